"""The report's plots, drawn with matplotlib (Agg, no pyplot state) and saved as PNG and SVG.

* AP vs latency, with the Pareto front per family (the paper's Figure 1 style): one plot per
  speed setup (device name, backend, dtype) — latencies of different setups are never in one plot;
* AP vs parameters and AP vs GFLOPs (with the same fronts);
* latency and throughput vs batch size, from throughput records, per speed setup (batch_plot.py);
* measured vs claimed deltas, from the claims table (claims checked under their conditions only;
  claims_plot.py);
* precision-recall curves per model (IoU .50:.95, all areas, 100 detections), per dataset.

Every plot names its units on the axes and, in its title, the device / backend / precision it
measured and, where that applies, ``stand-in: random-init weights / generated data``. A plot
whose data is missing is not drawn: it is returned as a ``SkippedPlot`` with the reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels
from dfine_bench.reporting.ap_pairing import PairedAP, accuracy_by_dataset, dataset_text, pair_ap
from dfine_bench.reporting.ap_pairing import column_by_source as _column_by_source
from dfine_bench.reporting.ap_pairing import numeric_column as _numeric_column
from dfine_bench.reporting.batch_plot import latency_vs_batch
from dfine_bench.reporting.claims_plot import claims_deltas, is_number
from dfine_bench.reporting.claims_table import ClaimsTable
from dfine_bench.reporting.figures import (
    PLOT_STYLE,
    Plot,
    PlotSet,
    SkippedPlot,
    new_figure,
    plot_title,
    save_figure,
    slug,
    stand_in_mark,
)
from dfine_bench.reporting.pareto import pareto_front
from dfine_bench.reporting.plot_sources import eval_setups, family_colors, stand_in_of, table_records
from dfine_bench.reporting.stage_plot import stage_bars
from dfine_bench.reporting.tables import ACCURACY, COMPLEXITY, SPEED, Comparison, ComparisonTable


@dataclass
class _Point:
    label: str
    family: str
    x: float
    y: float
    borrowed: bool = False  # its AP is eager fp32's, not measured with the point's own backend


# -- drawing ------------------------------------------------------------------------------------
def draw_tradeoff(
    points: Sequence[_Point], *, x_label: str, y_label: str, title: str, stand_in: str, borrowed: str = ""
) -> Figure:
    """Accuracy against a cost, one colour per family, its Pareto front joined by a line.

    Points whose AP is borrowed (``_Point.borrowed``) are drawn hollow, and ``borrowed`` names
    that AP in the legend."""
    fig = new_figure()
    ax = fig.add_subplot()
    for family, color in family_colors([p.family for p in points]).items():
        _draw_family(ax, family, color, [p for p in points if p.family == family])
    ax.margins(x=0.12, y=0.12)  # room for the model names
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if any(p.borrowed for p in points):
        handles.append(ax.scatter([], [], facecolors="none", edgecolors="0.3"))
        names.append(f"hollow: {borrowed}")
    ax.legend(handles, names, title="family (line: Pareto front)", fontsize=8, title_fontsize=8)
    ax.set_title(title, fontsize=9)
    stand_in_mark(fig, stand_in)
    return fig


def _xy(pts: Sequence[_Point]) -> tuple[list[float], list[float]]:
    return [p.x for p in pts], [p.y for p in pts]


def _draw_family(ax: Any, family: str, color: Any, pts: list[_Point]) -> None:
    """One family's points (hollow where the AP is borrowed), names and Pareto front."""
    own, lent = [p for p in pts if not p.borrowed], [p for p in pts if p.borrowed]
    name = family or "(no family)"
    if own:
        ax.scatter(*_xy(own), color=color, label=name, zorder=3)
    if lent:  # hollow: the family is named by its filled points when it has any
        ax.scatter(*_xy(lent), facecolors="none", edgecolors=color, label=None if own else name, zorder=3)
    front = [pts[i] for i in pareto_front(*_xy(pts))]
    if len(front) > 1:
        ax.plot(*_xy(front), color=color, lw=1.5, zorder=2)
    for p in pts:
        ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(4, 4), fontsize=8)


def _tradeoff_plot(
    cmp: Comparison,
    out_dir: Path,
    *,
    kind: str,
    acc: ComparisonTable,
    cost: ComparisonTable,
    cost_label: str,
    x_label: str,
    main: str,
    conditions: str,
    extra: str = "",
) -> Plot | None:
    ap_col = _column_by_source(acc, "AP")
    ap = _numeric_column(acc, ap_col) if ap_col else {}
    xs = _numeric_column(cost, cost_label)
    keys = [k for k in acc.row_keys if k in ap and k in xs]
    if not keys:
        return None
    points = [_Point(cmp.row_meta[k]["model"], cmp.row_meta[k]["family"], xs[k], ap[k]) for k in keys]
    stand_in = stand_in_of(cmp, (acc, cost), keys)
    title = plot_title(f"{main} — {conditions}", f"AP {acc.title.removeprefix('accuracy ')}", extra, stand_in)
    fig = draw_tradeoff(points, x_label=x_label, y_label="AP (%)", title=title, stand_in=stand_in)
    name = slug(kind, conditions, acc.title if len(accuracy_by_dataset(cmp)) > 1 else "")
    png, svg = save_figure(fig, out_dir, name)
    caption = f"{main}: {len(points)} model(s); {conditions}; AP {acc.title.removeprefix('accuracy ')}."
    return Plot(name, kind, title.replace("\n", " — "), caption, png, svg)


def ap_vs_latency(cmp: Comparison, out_dir: Path) -> list[Plot]:
    """AP against median batch-1 latency, one plot per speed setup and dataset.

    Each latency is paired with the AP measured through the same backend and precision; where
    there is none, with the eager fp32 AP, drawn hollow and named so (``ap_pairing.py``)."""
    plots = []
    datasets = accuracy_by_dataset(cmp)
    for speed in cmp.table(SPEED):
        lat = _column_by_source_bs1(speed)
        if lat is None or speed.group is None:
            continue
        recs = [r for r in table_records(cmp, speed) if r.task == "latency"]
        sizes = sorted({labels.input_label(r.setup.input_size) or "?" for r in recs})
        timed = sorted({r.setup.timed or "?" for r in recs})
        extra = f"latency: batch 1, input {', '.join(sizes)}, timed {', '.join(timed)}"
        xs = _numeric_column(speed, lat)
        for tables in datasets:
            name = slug("ap_vs_latency", speed.title, tables[0].title if len(datasets) > 1 else "")
            plot = _ap_latency_plot(cmp, speed, tables, xs, extra, out_dir / name)
            plots += [plot] if plot is not None else []
    return plots


def _ap_latency_plot(
    cmp: Comparison,
    speed: ComparisonTable,
    tables: list[ComparisonTable],
    xs: dict[tuple[str, ...], float],
    extra: str,
    path: Path,
) -> Plot | None:
    """One AP-vs-latency plot (None when no model has both numbers); ``path``: its files, no suffix."""
    paired = pair_ap(speed, tables)
    keys = [k for k in speed.row_keys if k in paired and k in xs]
    if not keys or speed.group is None:
        return None
    points = [_paired_point(cmp, k, xs[k], paired[k]) for k in keys]
    used = [t for t in tables if t.title in {paired[k].table for k in keys}]
    stand_in = stand_in_of(cmp, (*used, speed), keys)
    own = f"{speed.group.backend} {speed.group.dtype}"
    borrowed = f"AP of eager fp32 (none measured with {own})"
    ap_line, short = _ap_words(points, own, borrowed, dataset_text(tables[0]))
    title = plot_title(f"AP vs latency — {speed.title}", short, extra, stand_in)
    fig = draw_tradeoff(points, x_label="latency, median of batch 1 (ms)", y_label="AP (%)",
                        title=title, stand_in=stand_in, borrowed=borrowed)  # fmt: skip
    png, svg = save_figure(fig, path.parent, path.name)
    caption = f"AP vs latency: {len(points)} model(s); {speed.title}; {ap_line}."
    return Plot(path.name, "ap_vs_latency", title.replace("\n", " — "), caption, png, svg)


def _paired_point(cmp: Comparison, key: tuple[str, ...], latency: float, ap: PairedAP) -> _Point:
    meta = cmp.row_meta[key]
    return _Point(meta["model"], meta["family"], latency, ap.value, borrowed=not ap.same_setup)


def _ap_words(points: list[_Point], own: str, borrowed: str, data: str) -> tuple[str, str]:
    """How the AP of an AP-vs-latency plot is named: in the caption, and shortly in the title (the
    legend and caption say it in full)."""
    through = "" if own == "eager fp32" else f" through {own}"
    if all(p.borrowed for p in points):
        return f"AP {data}, {borrowed}", f"AP {data}: eager fp32's (none with {own})"
    if any(p.borrowed for p in points):
        return f"AP{through} {data}; hollow points: {borrowed}", f"AP{through} {data}; hollow: eager fp32"
    return f"AP{through} {data}", f"AP{through} {data}"


def _column_by_source_bs1(table: ComparisonTable) -> str | None:
    return next(
        (lb for lb, c in table.columns.items() if c.source == "latency_median" and "bs" not in lb), None
    )


def ap_vs_complexity(cmp: Comparison, out_dir: Path, metric: str) -> list[Plot]:
    """AP against parameters (``metric="params"``) or GFLOPs (``"gflops"``)."""
    plots = []
    for cx in cmp.table(COMPLEXITY):
        col = _column_by_source(cx, metric)
        if col is None:
            continue
        # one plot per dataset, with its eager fp32 AP (the first table): params and GFLOPs are
        # the model's, whatever backend ran the evaluation
        for acc in (tables[0] for tables in accuracy_by_dataset(cmp)):
            keys = set(acc.row_keys) & set(cx.row_keys)
            where = eval_setups(cmp, acc, keys)
            if metric == "params":
                kw = {"x_label": "parameters (M)", "main": "AP vs parameters", "kind": "ap_vs_params"}
            else:
                size = cx.title.removeprefix("complexity at ")
                kw = {"x_label": f"GFLOPs (calflops, {size})", "main": "AP vs GFLOPs", "kind": "ap_vs_gflops"}
            p = _tradeoff_plot(cmp, out_dir, acc=acc, cost=cx, cost_label=col, conditions=where, **kw)
            if p:
                plots.append(p)
    return plots


def _pr_curve(record: ResultRecord) -> tuple[list[float], list[float]] | None:
    """(recall, precision) of an ok evaluation record's ``details["pr_curve"]``; None if it has none."""
    pr = record.details.get("pr_curve") if record.status == "ok" else None
    if not isinstance(pr, dict):
        return None
    rec, prec = pr.get("recall"), pr.get("precision")
    if not isinstance(rec, list) or not isinstance(prec, list) or len(rec) != len(prec) or not rec:
        return None
    # COCO marks "no data" as -1: not a precision of 0
    values = [p if is_number(p) and p >= 0 else math.nan for p in prec]
    return (rec, values) if any(not math.isnan(v) for v in values) else None


def pr_curves(cmp: Comparison, out_dir: Path) -> list[Plot]:
    """Precision against recall per model (IoU .50:.95, area all, 100 detections), one plot per dataset."""
    plots = []
    for acc in cmp.table(ACCURACY):
        found = (
            (key, r, _pr_curve(r)) for key in acc.row_keys for r in cmp.sources.get((key, acc.title), [])
        )
        curves = [(key, r, *curve) for key, r, curve in found if curve is not None]
        if not curves:
            continue
        keys = [c[0] for c in curves]
        stand_in = stand_in_of(cmp, [acc], keys)
        first = curves[0][1].details["pr_curve"]
        cond = (
            f"IoU {first.get('iou', '.50:.95')}, area {first.get('area', 'all')}, "
            f"{first.get('max_dets', 100)} detections"
        )
        title = plot_title(
            f"Precision-recall — {acc.title}", f"{cond}; {eval_setups(cmp, acc, set(keys))}", stand_in
        )
        fig = new_figure()
        ax = fig.add_subplot()
        colors = family_colors([cmp.row_meta[k]["model"] for k in keys])
        for key, _r, rec, prec in curves:
            model = cmp.row_meta[key]["model"]
            ax.plot(rec, prec, color=colors[model], label=model)
        ax.set_xlabel("recall (fraction of ground-truth objects)")
        ax.set_ylabel("precision (fraction of detections)")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.03, 1.03)  # a curve at precision 0 stays visible above the axis
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(title, fontsize=9)
        stand_in_mark(fig, stand_in)
        name = slug("pr_curve", acc.title if len(cmp.table(ACCURACY)) > 1 else "")
        png, svg = save_figure(fig, out_dir, name)
        caption = f"Precision-recall curves of {len(curves)} model(s), {acc.title}."
        plots.append(Plot(name, "pr_curve", title.replace("\n", " — "), caption, png, svg))
    return plots


#: What each kind of plot needs, said when it is skipped.
_NEEDS = {
    "ap_vs_latency": "AP vs latency: needs evaluation (AP) and batch-1 latency records for the same models",
    "ap_vs_params": "AP vs parameters: needs evaluation (AP) and complexity (params) records",
    "ap_vs_gflops": "AP vs GFLOPs: needs evaluation (AP) and complexity (GFLOPs) records",
    "latency_vs_batch": "latency vs batch size: needs throughput records with a batch-size sweep",
    "pr_curve": "precision-recall curves: needs evaluation records with a pr_curve holding precision values",
}


def make_plots(cmp: Comparison, claims: ClaimsTable | None, out_dir: str | os.PathLike[str]) -> PlotSet:
    """Draw every plot the records allow into ``out_dir`` (PNG + SVG); the rest come back as skipped."""
    with matplotlib.rc_context(PLOT_STYLE):
        return _make_plots(cmp, claims, Path(out_dir))


def _make_plots(cmp: Comparison, claims: ClaimsTable | None, out: Path) -> PlotSet:
    plots: list[Plot] = []
    skipped: list[SkippedPlot] = []
    for kind, fn in (
        ("ap_vs_latency", lambda: ap_vs_latency(cmp, out)),
        ("ap_vs_params", lambda: ap_vs_complexity(cmp, out, "params")),
        ("ap_vs_gflops", lambda: ap_vs_complexity(cmp, out, "gflops")),
        ("latency_vs_batch", lambda: latency_vs_batch(cmp, out)),
        ("pr_curve", lambda: pr_curves(cmp, out)),
    ):
        drawn = fn()
        plots.extend(drawn)
        if not drawn:
            skipped.append(SkippedPlot(kind, f"not drawn — {_NEEDS[kind]}; these records have none"))

    for name, title, caption, png, svg in stage_bars(cmp.records, out):
        plots.append(Plot(name, "stages", title, caption, png, svg))
    claim_plot = claims_deltas(claims, cmp.records, out)
    if isinstance(claim_plot, Plot):
        plots.append(claim_plot)
    else:
        skipped.append(SkippedPlot("claims", f"claimed-vs-measured deltas not drawn — {claim_plot}"))
    return PlotSet(plots, skipped)
