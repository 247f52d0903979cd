"""The report's error-analysis section: what a model's AP loses, per error type, size, class and image.

Built from the records of the ``error_analysis`` evaluator (task ``error_analysis``, key ``tide``,
or ``tide-<backend>-<dtype>`` through another backend; see ``evaluation/error_analysis.py``), one
block per record: TIDE's dAP per error type (with how many errors of each type), COCO AP per
object size, the best and worst classes, and the worst images with why. Every number here is
already in the record's ``details["error_analysis"]``: nothing is recomputed, only laid out as
text tables, which the markdown and HTML renderers then print. Stand-in numbers (random-init or
fixture weights, generated data) say so in the block's heading, as everywhere in the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels
from dfine_bench.reporting.formatting import format_number, markdown_table
from dfine_bench.reporting.table_groups import is_reference_setup

TASK = "error_analysis"
#: TIDE's six main error types, in the paper's order, with what each means (the table's text).
ERROR_TYPES = {
    "classification": "right box (IoU >= fg), wrong class",
    "localization": "right class, box off (bg <= IoU < fg)",
    "both": "wrong class and box off",
    "duplicate": "right class, its object already taken by a higher score",
    "background": "no object there (IoU < bg with every object)",
    "missed": "an object no detection (nor a cls/loc error) covers",
}
#: How many classes are shown at each end of the per-class ranking.
CLASSES_EACH_END = 5
INTRO = (
    "TIDE (Bolya et al., ECCV 2020, computed with tidecv): dAP is the AP50 gained when every error "
    "of one type is fixed by an oracle, in AP points; the six types overlap, so they do not add up to "
    "what is lost. AP per size and per class are COCO AP .50:.95 in percent. Worst images are ranked "
    "by error mass: the summed scores of their false positives plus one per missed object."
)


@dataclass
class ErrorAnalysisBlock:
    """One error-analysis record laid out as text tables (every cell a string)."""

    title: str  # model, and the backend where it is not eager fp32
    subtitle: str  # weights, data, device · backend · dtype
    stand_in: str  # "stand-in: ..." or ""
    notes: list[str] = field(default_factory=list)
    dap: pd.DataFrame = field(default_factory=pd.DataFrame)
    sizes: pd.DataFrame = field(default_factory=pd.DataFrame)
    best_classes: pd.DataFrame = field(default_factory=pd.DataFrame)
    worst_classes: pd.DataFrame = field(default_factory=pd.DataFrame)
    worst_images: pd.DataFrame = field(default_factory=pd.DataFrame)
    problem: str | None = None  # a failed / skipped record: why it holds no analysis


def _num(v: Any, fmt: str = "{:.2f}") -> str:
    return format_number(v if isinstance(v, (int, float)) and not isinstance(v, bool) else None, fmt)


def _dap_frame(ea: Mapping[str, Any]) -> pd.DataFrame:
    dap, counts = ea.get("dap") or {}, ea.get("error_counts") or {}
    rows = [
        {
            "error type": kind,
            "dAP (AP50 points)": _num(dap.get(kind)),
            "errors": _num(counts.get(kind), "{:.0f}"),
            "what it is": what,
        }
        for kind, what in ERROR_TYPES.items()
    ]
    special = ea.get("dap_special") or {}
    for key, what in (
        ("false_positives", "every false positive removed"),
        ("false_negatives", "every missed object found"),
    ):
        if key in special:
            rows.append(
                {
                    "error type": key.replace("_", " "),
                    "dAP (AP50 points)": _num(special[key]),
                    "errors": "",
                    "what it is": what,
                }
            )
    return pd.DataFrame(rows)


def _sizes_frame(ea: Mapping[str, Any]) -> pd.DataFrame:
    sizes = ea.get("per_size_ap") or {}
    names = {"APs": "small (< 32² px)", "APm": "medium (32²-96² px)", "APl": "large (> 96² px)"}
    return pd.DataFrame(
        [{"object size": text, "AP (%)": _num(sizes.get(key))} for key, text in names.items() if key in sizes]
    )


def _class_frames(ea: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best classes, worst classes) by COCO AP; all of them in the first when there are few."""
    per_class = ea.get("per_class_ap") or {}
    ranked = []
    for name, v in per_class.items():
        ap = v.get("AP") if isinstance(v, Mapping) else v
        ap50 = v.get("AP50_tide") if isinstance(v, Mapping) else None
        if isinstance(ap, (int, float)):
            ranked.append((str(name), float(ap), ap50))
    ranked.sort(key=lambda t: (-t[1], t[0]))

    def frame(rows: Iterable[tuple[str, float, Any]]) -> pd.DataFrame:
        return pd.DataFrame(
            [{"class": n, "AP (%)": _num(ap), "AP50 (TIDE)": _num(ap50)} for n, ap, ap50 in rows],
            columns=["class", "AP (%)", "AP50 (TIDE)"],
        )

    if len(ranked) <= 2 * CLASSES_EACH_END:
        return frame(ranked), pd.DataFrame()
    return frame(ranked[:CLASSES_EACH_END]), frame(ranked[::-1][:CLASSES_EACH_END])


def _why(errors: Any) -> str:
    if not isinstance(errors, Mapping) or not errors:
        return "—"
    order = list(ERROR_TYPES)
    kinds = sorted(errors, key=lambda k: (order.index(k) if k in order else len(order), k))
    return ", ".join(f"{errors[k]} {k}" for k in kinds)


def _worst_frame(ea: Mapping[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "rank": str(i),
            "image id": str(w.get("image_id", "—")),
            "file": str(w.get("file_name") or "—"),  # records before file names were kept: unknown
            "error mass": _num(w.get("error_mass"), "{:.3g}"),
            "why": _why(w.get("errors")),
        }
        for i, w in enumerate(ea.get("worst_images") or [], start=1)
        if isinstance(w, Mapping)
    ]
    return pd.DataFrame(rows, columns=["rank", "image id", "file", "error mass", "why"])


def _block(record: ResultRecord) -> ErrorAnalysisBlock:
    s = record.setup
    title = record.model.name
    if not is_reference_setup(s.backend, s.dtype):
        title += f" · {s.backend} {s.dtype}"
    subtitle = "; ".join(
        [
            labels.weights_label(record.model),
            labels.dataset_label(record.dataset),
            f"evaluated on {labels.setup_label(s)}",
            f"run {record.run_id}",
        ]
    )
    stand_in = labels.stand_in_text(labels.stand_in_reasons(record))
    block = ErrorAnalysisBlock(title=title, subtitle=subtitle, stand_in=stand_in)
    ea = record.details.get("error_analysis")
    if record.status != "ok" or not isinstance(ea, Mapping):
        block.problem = f"{record.status}: {record.reason or 'no analysis in the record'}"
        return block
    block.notes.append(
        f"AP50 (TIDE) {_num(ea.get('ap50'))}; IoU fg {ea.get('pos_threshold', 0.5)}, "
        f"bg {ea.get('background_threshold', 0.1)}; top {ea.get('max_dets', 100)} detections per image"
    )
    block.dap = _dap_frame(ea)
    block.sizes = _sizes_frame(ea)
    block.best_classes, block.worst_classes = _class_frames(ea)
    block.worst_images = _worst_frame(ea)
    return block


def error_analysis_blocks(records: Iterable[ResultRecord]) -> list[ErrorAnalysisBlock]:
    """One block per error-analysis record (eager fp32 first per model); [] when there is none."""
    found = [r for r in records if r.task == TASK]
    found.sort(
        key=lambda r: (
            r.model.name,
            not is_reference_setup(r.setup.backend, r.setup.dtype),
            r.setup.backend,
            r.setup.dtype,
            r.run_id,
        )
    )
    return [_block(r) for r in found]


def class_headings(block: ErrorAnalysisBlock) -> tuple[str, str]:
    """Headings of the two class tables (one "classes by AP" table when there are few classes)."""
    if block.worst_classes.empty:
        return "Classes by AP", ""
    return f"Top {CLASSES_EACH_END} classes by AP", f"Bottom {CLASSES_EACH_END} classes by AP"


def error_analysis_markdown(blocks: list[ErrorAnalysisBlock]) -> list[str]:
    """The section's markdown lines; [] without blocks (the report then has no such section)."""
    if not blocks:
        return []
    out = ["## Error analysis", "", INTRO, ""]
    for b in blocks:
        out += [f"### {b.title}", "", f"{b.subtitle}." + (f" **{b.stand_in}.**" if b.stand_in else ""), ""]
        if b.problem:
            out += [f"No analysis: {b.problem}", ""]
            continue
        out += [f"- {n}" for n in b.notes] + [""]
        out += ["dAP per error type:", "", markdown_table(b.dap), ""]
        if not b.sizes.empty:
            out += ["AP per object size:", "", markdown_table(b.sizes), ""]
        best, worst = class_headings(b)
        if not b.best_classes.empty:
            out += [f"{best}:", "", markdown_table(b.best_classes), ""]
        if worst:
            out += [f"{worst}:", "", markdown_table(b.worst_classes), ""]
        if not b.worst_images.empty:
            out += [f"The {len(b.worst_images)} worst images:", "", markdown_table(b.worst_images), ""]
    return out
