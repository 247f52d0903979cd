"""The report's latency- and throughput-vs-batch-size plot, from throughput records' batch sweeps.

One plot per speed setup (device, backend, precision), two panels: latency per batch and
throughput against batch size (log2 axis), one line per model; a model whose sweep ran out of
memory says at which batch size in its legend entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels
from dfine_bench.reporting.figures import Plot, new_figure, plot_title, save_figure, slug, stand_in_mark
from dfine_bench.reporting.plot_sources import family_colors, stand_in_of
from dfine_bench.reporting.tables import SPEED, Comparison


@dataclass(frozen=True)
class _BatchSeries:
    """One model's throughput sweep: the batch sizes that ran and where memory ran out."""

    key: tuple[str, ...]
    record: ResultRecord
    ok: list[dict[str, Any]]  # the sweep's rows with status ok and a median latency
    oom_at: int | None  # the first batch size that did not fit in memory


def _batch_series(key: tuple[str, ...], record: ResultRecord) -> _BatchSeries | None:
    """The sweep of a throughput record (None for any other record or an empty sweep)."""
    rows = record.details.get("by_batch_size") if record.task == "throughput" else None
    if not isinstance(rows, list):
        return None
    rows = [b for b in rows if isinstance(b, dict)]
    ok = [b for b in rows if b.get("status") == "ok" and b.get("latency_median_ms") is not None]
    ok = [b for b in ok if b.get("batch_size")]
    oom_at = next((b["batch_size"] for b in rows if b.get("status") == "oom"), None)
    return _BatchSeries(key, record, ok, oom_at) if ok else None


def _draw_batch_series(ax_lat: Any, ax_tp: Any, series: list[_BatchSeries], models: dict[tuple, str]) -> None:
    colors = family_colors(list(models.values()))
    for s in series:
        model = models[s.key]
        name = model + (f" (out of memory at batch {s.oom_at})" if s.oom_at else "")
        bs = [int(b["batch_size"]) for b in s.ok]
        ax_lat.plot(bs, [float(b["latency_median_ms"]) for b in s.ok], "o-", color=colors[model], label=name)
        tp = [(int(b["batch_size"]), float(b["throughput"])) for b in s.ok if b.get("throughput") is not None]
        ax_tp.plot([t[0] for t in tp], [t[1] for t in tp], "o-", color=colors[model], label=name)
    all_bs = sorted({int(b["batch_size"]) for s in series for b in s.ok})
    for ax, ylabel in ((ax_lat, "latency per batch, median (ms)"), (ax_tp, "throughput (images/s)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_bs, [str(b) for b in all_bs])
        ax.minorticks_off()
        ax.set_xlabel("batch size (images)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax_lat.legend(fontsize=8)


def latency_vs_batch(cmp: Comparison, out_dir: Path) -> list[Plot]:
    """Latency per batch and throughput against batch size, from throughput sweeps, per speed setup."""
    plots = []
    for speed in cmp.table(SPEED):
        found = (
            _batch_series(key, r) for key in speed.row_keys for r in cmp.sources.get((key, speed.title), [])
        )
        series = [s for s in found if s is not None]
        if not series:
            continue
        stand_in = stand_in_of(cmp, [speed], [s.key for s in series])
        sizes = sorted({labels.input_label(s.record.setup.input_size) or "?" for s in series})
        title = plot_title(
            f"Latency and throughput vs batch size — {speed.title}", f"input {', '.join(sizes)}", stand_in
        )
        fig = new_figure(10, 4.6)
        ax_lat, ax_tp = fig.subplots(1, 2)
        _draw_batch_series(ax_lat, ax_tp, series, {s.key: cmp.row_meta[s.key]["model"] for s in series})
        fig.suptitle(title, fontsize=9)
        stand_in_mark(fig, stand_in)
        name = slug("latency_vs_batch", speed.title)
        png, svg = save_figure(fig, out_dir, name)
        caption = f"Latency vs batch size on {speed.title}: {len(series)} model(s)."
        plots.append(Plot(name, "latency_vs_batch", title.replace("\n", " — "), caption, png, svg))
    return plots
