"""The report section laid out like the paper's Table 2: each DETR baseline, its FDR + GO-LSD
variant and the difference, for what a run measured (params, GFLOPs, latency, throughput, AP).

Rows come in threes (baseline, "+ FDR & GO-LSD", Δ) for every baseline whose variant was measured
in the same run (``dfine_bench.adapters.fdr_variants.VARIANTS``). Latency and throughput columns
are per backend at batch 1 on the device that ran them (the device name is in the caption);
AP of random-init weights or generated data is marked as a stand-in, as everywhere else.
``table2_section`` builds the section once; the markdown and HTML reports render it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dfine_bench.records.schema import ResultRecord

#: baseline -> variant (kept in step with ``dfine_bench.adapters.fdr_variants.VARIANTS``, which
#: imports torch; the report must not)
PAIRS = {
    "rtdetr_r18": "rtdetr_r18+fdr",
    "rtdetr_r50": "rtdetr_r50+fdr",
    "deformable_detr_refine": "deformable_detr+fdr",
}
TITLE = "Table 2 layout: DETR baselines with FDR + GO-LSD"


def _value(record: ResultRecord, metric: str) -> float | None:
    m = record.metrics.get(metric)
    return None if m is None or m.value is None else float(m.value)


def _measured(records: Iterable[ResultRecord], model: str) -> dict[str, float | None]:
    """The model's numbers: params (M), GFLOPs, AP, and latency/FPS per backend at batch 1."""
    out: dict[str, float | None] = {}
    for r in records:
        if r.model.name != model or r.status != "ok":
            continue
        if r.task == "complexity":
            out["params (M)"] = _value(r, "params")
            out["GFLOPs"] = _value(r, "gflops")
        elif r.task == "evaluation" and (r.setup.backend, r.setup.dtype) == ("eager", "fp32"):
            # AP through another backend (evaluation.backends) is the export's, not the model's
            out["AP"] = _value(r, "AP")
            if r.model.random_init or (r.dataset is not None and r.dataset.generated):
                out["AP stand-in"] = 1.0
        elif r.task == "latency" and r.setup.batch_size == 1:
            out[f"latency {r.setup.backend} (ms)"] = _value(r, "latency_mean")
        elif r.task == "throughput":
            out[f"throughput {r.setup.backend} (img/s)"] = _value(r, "throughput")
    return out


def table2_rows(records: Sequence[ResultRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): baseline, variant and Δ rows per measured pair; empty when none is."""
    names = {r.model.name for r in records}
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    for baseline, variant in PAIRS.items():
        if baseline not in names or variant not in names:
            continue
        a, b = _measured(records, baseline), _measured(records, variant)
        keys = [k for k in (*a, *b) if k != "AP stand-in"]
        columns += [k for k in dict.fromkeys(keys) if k not in columns]
        delta: dict[str, Any] = {"model": "Δ"}
        for key in keys:
            va, vb = a.get(key), b.get(key)
            delta[key] = None if va is None or vb is None else vb - va
        stand_in = "AP stand-in" in a or "AP stand-in" in b
        rows += [
            {"model": baseline, **a, "AP stand-in": stand_in},
            {"model": f"{variant} (+ FDR & GO-LSD)", **b, "AP stand-in": stand_in},
            {**delta, "AP stand-in": stand_in},
        ]
    return columns, rows


def _cell(key: str, value: Any, delta: bool) -> str:
    if value is None:
        return "—"
    if key == "params (M)":
        return f"{value:+.3f}" if delta else f"{value:.3f}"
    return f"{value:+.2f}" if delta else f"{value:.2f}"


@dataclass(frozen=True)
class Table2Section:
    """The section's text and its formatted cells, rendered by both the markdown and HTML reports."""

    title: str
    intro: str
    columns: list[str]
    rows: list[list[str]]  # formatted cells, the first one the row's model (or Δ)
    delta_rows: list[int]  # indices of the Δ rows (bold in markdown)
    note: str | None  # the stand-in note, when some AP is a stand-in's

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["model", *self.columns])


def table2_section(records: Sequence[ResultRecord]) -> Table2Section | None:
    """The section for ``records``; None when no baseline and its FDR variant were measured."""
    columns, rows = table2_rows(records)
    if not rows:
        return None
    devices = sorted({str(r.setup.device_name or r.setup.device) for r in records if r.task == "latency"})
    intro = (
        "Each baseline beside its variant with D-FINE's FDR box head and GO-LSD loss (only the box head and "
        "loss differ), measured in the same run; Δ = variant − baseline. Latency: mean per image at batch 1"
        + (f" on {', '.join(devices)}" if devices else "")
        + ". Claim verdicts (ratio baseline / variant, `fdr_same_*`) are in the claims table."
    )
    cells: list[list[str]] = []
    deltas: list[int] = []
    for i, row in enumerate(rows):
        is_delta = row["model"] == "Δ"
        if is_delta:
            deltas.append(i)
        line = [str(row["model"])]
        for key in columns:
            cell = _cell(key, row.get(key), is_delta)
            if key == "AP" and row.get("AP stand-in") and cell != "—":
                cell += " (stand-in)"
            line.append(cell)
        cells.append(line)
    note = None
    if any(r.get("AP stand-in") for r in rows):
        note = (
            "AP marked stand-in: random-init weights or generated data (no FDR + GO-LSD weights are "
            "released); the accuracy side of Table 2 is checked at small scale by `dfine-bench ablate`."
        )
    return Table2Section(TITLE, intro, columns, cells, deltas, note)


def table2_markdown(records: Sequence[ResultRecord]) -> list[str]:
    """Markdown lines of the section (an empty list when no pair was measured in these records)."""
    section = table2_section(records)
    if section is None:
        return []
    lines = [
        f"## {section.title}",
        "",
        section.intro,
        "",
        "| model | " + " | ".join(section.columns) + " |",
        "|---|" + "---:|" * len(section.columns),
    ]
    for i, row in enumerate(section.rows):
        name = f"**{row[0]}**" if i in section.delta_rows else row[0]
        lines.append(f"| {name} | " + " | ".join(row[1:]) + " |")
    if section.note:
        lines += ["", section.note]
    return [*lines, ""]
