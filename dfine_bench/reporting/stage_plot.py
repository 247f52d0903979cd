"""The report's time-per-stage plot: one stacked bar per model and backend, one plot per device.

Each bar stacks the median of every stage that was measured (``details["stages"]`` of a latency
record, ``dfine_bench.profiling.stages``): decode, preprocess, host->device, forward, device->host,
postprocess. A stage that was not measured is left out of its bar, never drawn as 0, and the caption
names it; a stage timed inside another (the deploy graph's postprocessor, inside forward) is named
on its bar and in the caption. Timings of different devices are never in one plot; unstable and
throttled measurements are marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfine_bench.records.metrics import STAGE_LABELS, STAGES
from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting.figures import new_figure, save_figure, slug, stand_in_mark
from dfine_bench.reporting.labels import input_label

#: Stage colours (colour-blind-safe, Okabe-Ito).
_COLORS = {
    "decode": "#E69F00",
    "preprocess": "#56B4E9",
    "h2d": "#009E73",
    "forward": "#0072B2",
    "d2h": "#F0E442",
    "postprocess": "#D55E00",
}


def _stage_records(records: Sequence[ResultRecord]) -> dict[str, list[ResultRecord]]:
    """Latency records with stage timings, by device name (one plot each)."""
    out: dict[str, list[ResultRecord]] = {}
    for r in records:
        if r.task == "latency" and r.status == "ok" and (r.details.get("stages") or {}).get("by_stage"):
            out.setdefault(str(r.setup.device_name or r.setup.device), []).append(r)
    return out


def stage_medians(record: ResultRecord) -> tuple[dict[str, float], list[str]]:
    """(median ms of each measured stage, names of the stages not measured) of one record."""
    by = record.details["stages"]["by_stage"]
    medians: dict[str, float] = {}
    missing: list[str] = []
    for name in STAGES:
        s = by.get(name) or {}
        if s.get("status") == "ok":
            medians[name] = float(s["summary"]["median_ms"])
        elif not str(s.get("status", "")).startswith("in "):  # "in forward": timed, inside forward
            missing.append(name)
    return medians, missing


def stages_inside(record: ResultRecord) -> dict[str, str]:
    """Stages timed inside another one (the deploy graph's postprocess -> forward) of one record."""
    inside = (record.details.get("stages") or {}).get("included_in_another") or {}
    return {str(k): str(v) for k, v in inside.items()}


def stage_bars(records: Sequence[ResultRecord], out_dir: Path) -> list[tuple[str, str, str, Path, Path]]:
    """Draw one stacked-bar plot per device; returns ``(name, title, caption, png, svg)`` per plot."""
    return [_stage_plot(device, recs, out_dir) for device, recs in _stage_records(records).items()]


@dataclass
class _Bars:
    """What drawing one device's bars found: the bar labels and what the legend and caption say."""

    labels: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    not_measured: dict[str, set[str]] = field(default_factory=dict)
    inside_any: set[str] = field(default_factory=set)


def _stage_plot(device: str, recs: list[ResultRecord], out_dir: Path) -> tuple[str, str, str, Path, Path]:
    """One device's stacked-bar plot, saved: ``(name, title, caption, png, svg)``."""
    recs = sorted(recs, key=lambda r: (r.model.name, r.setup.backend, r.setup.dtype))
    fig = new_figure(7.5, 1.6 + 0.45 * len(recs))
    ax = fig.add_subplot()
    # one device, but not always one input size: then every bar says its size
    size_of = {id(r): input_label(r.setup.input_size or r.model.input_size) or "?" for r in recs}
    sizes = set(size_of.values())
    bars = _Bars()
    for i, r in enumerate(recs):
        _draw_bar(ax, i, r, f" {size_of[id(r)]}" if len(sizes) > 1 else "", bars)
    ax.set_yticks(range(len(recs)), bars.labels)
    ax.invert_yaxis()
    ax.set_xlabel("median time per stage, batch 1 (ms)")
    ax.grid(True, axis="x", alpha=0.3)
    from matplotlib.patches import Patch

    handles = [Patch(color=_COLORS[s], label=STAGE_LABELS[s]) for s in STAGES if s in bars.used]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    stand_in = "stand-in: random-init weights" if any(r.model.random_init for r in recs) else ""
    title = f"Time per stage on {device}" + (f"\n{stand_in}" if stand_in else "")
    ax.set_title(title, fontsize=9)
    stand_in_mark(fig, stand_in)
    name = slug("stages", device)
    png, svg = save_figure(fig, out_dir, name)
    return name, title.replace("\n", " — "), _caption(device, sizes, bars), png, svg


def _draw_bar(ax: Any, i: int, r: ResultRecord, size: str, bars: _Bars) -> None:
    """Stack record ``r``'s measured stages as bar ``i``; note its label and what it lacks in ``bars``."""
    medians, missing = stage_medians(r)
    inside = stages_inside(r)
    bars.inside_any.update(f"{STAGE_LABELS[k]} inside {STAGE_LABELS.get(v, v)}" for k, v in inside.items())
    deploy = " [deploy graph]" if inside else ""
    bars.labels.append(f"{r.model.name} {r.setup.backend}-{r.setup.dtype}{size}{deploy}{_validity_mark(r)}")
    left = 0.0
    for name, ms in medians.items():
        ax.barh(i, ms, left=left, color=_COLORS[name], edgecolor="white", linewidth=0.5)
        left += ms
        bars.used.add(name)
    for name in missing:
        bars.not_measured.setdefault(STAGE_LABELS[name], set()).add(r.setup.backend)


def _validity_mark(r: ResultRecord) -> str:
    """`` (THROTTLED)`` or `` (UNSTABLE)`` for a measurement that was, else nothing."""
    validity = r.details.get("validity") or {}
    if validity.get("throttled"):
        return " (THROTTLED)"
    return " (UNSTABLE)" if validity.get("status") == "unstable" else ""


def _caption(device: str, sizes: set[str], bars: _Bars) -> str:
    """The plot's caption: what it shows, the stages not measured, input sizes, deploy-graph bars."""
    missing_text = "; ".join(f"{k} ({', '.join(sorted(v))})" for k, v in bars.not_measured.items())
    caption = f"Median of each stage timed on its own, per model and backend, on {device}." + (
        f" Not measured (left out, not 0): {missing_text}." if missing_text else ""
    )
    if len(sizes) > 1:
        caption += f" Input sizes differ ({', '.join(sorted(sizes))}): compare bars of one size."
    else:
        caption += f" Input {next(iter(sizes))}."
    if bars.inside_any:
        caption += (
            f" Deploy graph bars: {', '.join(sorted(bars.inside_any))} (the postprocessor runs in the "
            "engine, as the paper's deployment)."
        )
    return caption
