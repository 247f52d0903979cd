"""Deployment fidelity: one table of every (backend, precision) cell, its diagnosis, an AP-vs-latency plot.

A *cell* is one model evaluated through one backend in one precision (``evaluation.backends``, e.g.
``onnxruntime-int8``), joined with the latency record of the same backend and precision. Per
cell: AP, AP50, AP75, ΔAP against eager fp32, the artifact's size (MB), the latency median and
its validity, the largest output difference against fp32 on the timing images, the export
settings (opset, converter or quantizer, calibration) and, for a cell that failed, the layer the
diagnosis names and the AP that keeping it in fp32 restores (``evaluation/precision_cells.py``).

The section appears only when some evaluated cell is not fp32 (``suite=precision``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting.figures import Plot, new_figure, plot_title, save_figure, slug, stand_in_mark

TITLE = "Deployment fidelity: every backend and precision"
INTRO = (
    "Each row is the model evaluated through one backend in one precision (AP on the same images), "
    "beside that cell's latency record. ΔAP is against eager fp32; 'max |Δ| vs fp32' is the largest "
    "output difference on the timing images (after pairing queries). A cell that loses more than "
    "1 AP or gives non-finite outputs is diagnosed layer by layer on calibration images; "
    "'+keep_fp32' rows are that cell again with the diagnosed layers kept in fp32."
)
FIX_SUFFIX = "+keep_fp32"
MARKERS = {"fp32": "o", "fp16": "s", "bf16": "D", "int8": "^"}


@dataclass
class Cell:
    """One (model, backend, precision) row of the table."""

    model: str
    backend: str
    dtype: str
    fix: bool = False
    ap: float | None = None
    ap50: float | None = None
    ap75: float | None = None
    delta: float | None = None
    status: str = "ok"
    reason: str = ""
    megabytes: float | None = None
    latency_ms: float | None = None
    validity: str = ""
    max_diff: float | None = None
    export: str = ""
    nonfinite_images: int = 0
    kept: list[str] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None
    stand_in: bool = False

    @property
    def label(self) -> str:
        return f"{self.backend} {self.dtype}{FIX_SUFFIX if self.fix else ''}"


def _value(record: ResultRecord, name: str) -> float | None:
    m = record.metrics.get(name)
    v = getattr(m, "value", None)
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def _export_text(info: Mapping[str, Any]) -> str:
    parts = []
    if info.get("onnx_exporter"):
        parts.append(f"ONNX opset {info.get('onnx_opset', '?')} ({info['onnx_exporter']})")
    for key in ("converter", "quantizer"):
        if info.get(key):
            parts.append(str(info[key]))
    cal = info.get("calibration")
    if isinstance(cal, Mapping):
        method = info.get("method", "")
        parts.append(f"calibration: {cal.get('images')} generated images, seed {cal.get('seed')}; {method}")
    if info.get("inference_precision"):
        parts.append(f"OpenVINO ran {info['inference_precision']}")
    if info.get("parameter_dtypes"):
        parts.append("weights " + ", ".join(f"{k}: {v}" for k, v in info["parameter_dtypes"].items()))
    return "; ".join(parts)


def _backend_info(record: ResultRecord | None) -> Mapping[str, Any]:
    info = record.details.get("backend_info") if record is not None else None
    return info if isinstance(info, Mapping) else {}


def _is_cell_record(r: ResultRecord) -> bool:
    return r.task == "evaluation" and ("AP" in r.metrics or r.status != "ok")


#: Where each precision sorts within a backend's rows.
_DTYPE_ORDER = {"fp32": 0, "fp16": 1, "bf16": 2, "int8": 3}
_CellKey = tuple[str, str, str]  # (model, backend, dtype)


def _cell_key(r: ResultRecord) -> _CellKey:
    return (r.model.name, r.setup.backend, r.setup.dtype)


def precision_cells(records: Iterable[ResultRecord]) -> list[Cell]:
    """The table's cells (empty: no evaluated cell in a reduced precision)."""
    records = list(records)
    evals = [r for r in records if _is_cell_record(r)]
    if not any(r.setup.dtype != "fp32" for r in evals):
        return []
    latency = {_cell_key(r): r for r in records if r.task == "latency" and r.setup.batch_size == 1}
    diagnoses = {_cell_key(r): r for r in records if r.task == "precision_diagnosis"}
    cells = [_cell(r, latency, diagnoses) for r in evals]
    _set_deltas(cells)
    cells.sort(key=_sort_key)
    return cells


def _cell(
    r: ResultRecord, latency: Mapping[_CellKey, ResultRecord], diagnoses: Mapping[_CellKey, ResultRecord]
) -> Cell:
    """The cell of evaluation record ``r``, with its latency and diagnosis (a fix cell has neither)."""
    fix = r.record_id.endswith(FIX_SUFFIX)
    lat = None if fix else latency.get(_cell_key(r))
    info = {**_backend_info(lat), **_backend_info(r)}
    cell = Cell(
        model=r.model.name,
        backend=r.setup.backend,
        dtype=r.setup.dtype,
        fix=fix,
        ap=_value(r, "AP"),
        ap50=_value(r, "AP50"),
        ap75=_value(r, "AP75"),
        status=r.status,
        reason=r.reason or "",
        megabytes=info.get("artifact_mb") if isinstance(info.get("artifact_mb"), int | float) else None,
        export=_export_text(info),
        nonfinite_images=int(info.get("nonfinite_images") or 0),
        kept=list(r.setup.extra.get("keep_fp32") or []),
        stand_in=bool(r.dataset and r.dataset.generated) or bool(r.model.random_init),
    )
    if lat is not None:
        _add_latency(cell, lat)
    if not fix:
        d = diagnoses.get(_cell_key(r))
        cell.diagnosis = dict(d.details) if d is not None else None
    return cell


def _add_latency(cell: Cell, lat: ResultRecord) -> None:
    """The latency record's median, output difference against fp32 and validity."""
    cell.latency_ms = _value(lat, "latency_median")
    cell.max_diff = _value(lat, "output_max_abs_diff")
    cell.validity = str(lat.setup.extra.get("stability") or "") if lat.status == "ok" else lat.status
    if lat.status != "ok" and " by inf " in (lat.reason or ""):
        cell.validity += " (non-finite outputs)"


def _set_deltas(cells: list[Cell]) -> None:
    """ΔAP of each cell against its model's eager fp32 cell (None without either AP)."""
    refs = {c.model: c.ap for c in cells if c.backend == "eager" and c.dtype == "fp32" and not c.fix}
    for c in cells:
        ref = refs.get(c.model)
        c.delta = c.ap - ref if c.ap is not None and ref is not None else None


def _sort_key(c: Cell) -> tuple[str, bool, str, int, bool]:
    """Per model: eager first, then backends by name; within one, by precision, the fix last."""
    return (c.model, c.backend != "eager", c.backend, _DTYPE_ORDER.get(c.dtype, 9), c.fix)


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return fmt.format(v) if v is not None else "—"


def _diagnosis_text(c: Cell) -> str:
    d = c.diagnosis
    if c.fix:
        return "kept in fp32: " + ", ".join(c.kept)
    if not d:
        return ""
    if not d.get("diagnosed"):
        return "within tolerance"
    culprit = (d.get("culprit") or {}).get("name")
    text = str(d.get("summary") or "") if culprit else "no layer named"
    fix = d.get("fix")
    if isinstance(fix, Mapping):
        ap = fix.get("AP")
        verdict = "restores it" if fix.get("restored") else "does not restore it"
        text += f"; keep_fp32 -> AP {_num(ap)} ({verdict})" if ap is not None else f"; {fix.get('note', '')}"
    return text


def precision_frame(cells: list[Cell]) -> pd.DataFrame:
    """The table as text."""
    rows = []
    for c in cells:
        ap = _num(c.ap) if c.status == "ok" else f"{c.status}: {c.reason[:60]}"
        if c.nonfinite_images:
            ap += f" ({c.nonfinite_images} img non-finite)"
        rows.append(
            {
                "model": c.model,
                "cell": c.label,
                "AP": ap,
                "AP50": _num(c.ap50),
                "AP75": _num(c.ap75),
                "ΔAP": _num(c.delta, "{:+.2f}"),
                "MB": _num(c.megabytes, "{:.1f}"),
                "latency (ms)": _num(c.latency_ms),
                "validity": c.validity or "—",
                "max |Δ| vs fp32": _num(c.max_diff, "{:.3g}"),
                "export": c.export or "—",
                "diagnosis": _diagnosis_text(c) or "—",
            }
        )
    return pd.DataFrame(rows)


def diagnosis_lines(cells: list[Cell]) -> list[str]:
    """One line per diagnosed cell: what broke where, and what the fix restored."""
    out = []
    for c in cells:
        d = c.diagnosis
        if c.fix or not d or not d.get("diagnosed"):
            continue
        over = d.get("over_fp16_count") or 0
        line = f"{c.model} {c.label} ({', '.join(d.get('triggers') or [])}): {d.get('summary')}"
        if d.get("graph"):
            line += f" [{d['graph']}, {d.get('images')} calibration images]"
        if over:
            line += f"; {over} layer(s) whose fp32 range passes 65504"
        out.append(line + ".")
    return out


def precision_markdown(records: Iterable[ResultRecord]) -> list[str]:
    cells = precision_cells(records)
    if not cells:
        return []
    from dfine_bench.reporting.formatting import markdown_table

    out = [f"## {TITLE}", "", INTRO, "", markdown_table(precision_frame(cells)), ""]
    out += [f"- {line}" for line in diagnosis_lines(cells)]
    return [*out, ""]


def precision_console(records: Iterable[ResultRecord]) -> str:
    """The table for the terminal (empty: no reduced-precision cell)."""
    cells = precision_cells(records)
    if not cells:
        return ""
    frame = precision_frame(cells).drop(columns=["export", "AP50", "AP75"])
    lines = ["", "DEPLOYMENT FIDELITY (AP per backend and precision):", frame.to_string(index=False)]
    return "\n".join(lines + [f"  {line}" for line in diagnosis_lines(cells)])


def precision_plots(records: Iterable[ResultRecord], out_dir: Path) -> list[Plot]:
    """AP against latency per model, one marker per precision, one colour per backend."""
    cells = [c for c in precision_cells(records) if c.ap is not None and c.latency_ms is not None]
    models = dict.fromkeys(c.model for c in cells)
    return [_precision_plot(model, [c for c in cells if c.model == model], out_dir) for model in models]


def _precision_plot(model: str, mine: list[Cell], out_dir: Path) -> Plot:
    """One model's AP-vs-latency plot of its cells (each with an AP and a latency)."""
    fig = new_figure(7.5, 5.0)
    ax = fig.add_subplot()
    _draw_cells(ax, mine)
    ax.set_xlabel("latency median, batch 1 (ms)")
    ax.set_ylabel("AP")
    stand_in = "fixture numbers on generated data" if any(c.stand_in for c in mine) else ""
    title = plot_title(f"{model}: AP vs latency per backend and precision", stand_in)
    ax.set_title(title, fontsize=9)
    stand_in_mark(fig, stand_in)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = slug("precision", model)
    png, svg = save_figure(fig, out_dir, name)
    caption = (
        "Marker: precision; colour: backend. Cells without a valid latency (non-finite outputs) "
        "and the keep_fp32 fix cells (AP only) are in the table, not here."
    )
    return Plot(name, "ap_vs_latency_precision", title, caption, png, svg)


def _draw_cells(ax: Any, mine: list[Cell]) -> None:
    """Each cell as a labelled point (marker: precision, colour: backend), and a legend of both."""
    backends = list(dict.fromkeys(c.backend for c in mine))
    colors = {b: f"C{i}" for i, b in enumerate(backends)}
    for c in mine:
        ax.scatter(
            c.latency_ms or 0.0,
            c.ap or 0.0,
            marker=MARKERS.get(c.dtype, "x"),
            color=colors[c.backend],
            s=60,
        )
        ax.annotate(
            c.label, (c.latency_ms or 0, c.ap or 0), textcoords="offset points", xytext=(5, 4), fontsize=7
        )
    # legend entries without points: one per precision shown, one per backend
    for dtype, marker in MARKERS.items():
        if any(c.dtype == dtype for c in mine):
            ax.scatter([], [], marker=marker, color="0.4", label=dtype)
    for b in backends:
        ax.scatter([], [], marker="o", color=colors[b], label=b)
    ax.legend(fontsize=7, loc="best")
