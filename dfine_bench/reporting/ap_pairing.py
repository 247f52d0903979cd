"""Which AP stands beside a latency: the AP measured through the same backend and precision.

Evaluation can run through any profiling backend (``evaluation.backends``), so one model may have
an eager fp32 AP, an ONNX Runtime fp32 AP and a TensorRT fp16 AP. A latency timed with
TensorRT fp16 belongs with the TensorRT fp16 AP: that is the accuracy of the artifact that was
timed. Where no AP was measured through the latency's backend and precision, the reference eager
fp32 AP stands in, and the pairing says so (``PairedAP.same_setup`` is False), so the plot can
mark that point and name the AP it shows. An AP of a third backend is never borrowed.

Accuracy tables are split per dataset and per backend/dtype (``tables.py``); the pairing works
per dataset, over the tables that differ only in backend and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dfine_bench.reporting.table_groups import REFERENCE_BACKEND, REFERENCE_DTYPE, is_reference_setup
from dfine_bench.reporting.tables import ACCURACY, Comparison, ComparisonTable


@dataclass(frozen=True)
class PairedAP:
    """The AP shown for one latency row and where it came from."""

    value: float
    backend: str
    dtype: str
    same_setup: bool  # measured through the latency's own backend and precision
    table: str  # the accuracy table it was read from


def numeric_column(table: ComparisonTable, label: str) -> dict[tuple[str, ...], float]:
    """Row key -> finite number of one column (statuses and empty cells left out)."""
    if label not in table.frame.columns:
        return {}
    out = {}
    for key, v in zip(table.row_keys, table.frame[label]):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


def column_by_source(table: ComparisonTable, source: str) -> str | None:
    """The label of the column filled from metric ``source`` (None: the table has none)."""
    return next((label for label, c in table.columns.items() if c.source == source), None)


def _setup(table: ComparisonTable) -> tuple[str, str]:
    g = table.group
    if g is None:
        return REFERENCE_BACKEND, REFERENCE_DTYPE
    return g.backend or REFERENCE_BACKEND, g.dtype or REFERENCE_DTYPE


def accuracy_by_dataset(cmp: Comparison) -> list[list[ComparisonTable]]:
    """The accuracy tables, one list per evaluation dataset and engine, the eager fp32 one first."""
    found: dict[tuple[object, ...], list[ComparisonTable]] = {}
    for t in cmp.table(ACCURACY):
        dataset = t.group.key[:-2] if t.group else (t.title,)  # the key ends with backend, dtype
        found.setdefault(dataset, []).append(t)
    return [sorted(ts, key=lambda t: not is_reference_setup(*_setup(t))) for ts in found.values()]


def pair_ap(speed: ComparisonTable, accuracy: Sequence[ComparisonTable]) -> dict[tuple[str, ...], PairedAP]:
    """Row key -> the AP paired with ``speed``'s latency, from one dataset's ``accuracy`` tables."""
    wanted = _setup(speed)
    same = next((t for t in accuracy if _setup(t) == wanted), None)
    reference = next((t for t in accuracy if is_reference_setup(*_setup(t))), None)

    def ap_of(table: ComparisonTable | None) -> dict[tuple[str, ...], float]:
        col = column_by_source(table, "AP") if table is not None else None
        return numeric_column(table, col) if table is not None and col else {}

    same_ap, reference_ap = ap_of(same), ap_of(reference)
    out: dict[tuple[str, ...], PairedAP] = {}
    for key in speed.row_keys:
        if key in same_ap and same is not None:
            out[key] = PairedAP(same_ap[key], *wanted, same_setup=True, table=same.title)
        elif key in reference_ap and reference is not None:
            out[key] = PairedAP(
                reference_ap[key], REFERENCE_BACKEND, REFERENCE_DTYPE, same_setup=False, table=reference.title
            )
    return out


def dataset_text(table: ComparisonTable) -> str:
    """``"on generated, 6 images, stand-in"``: an accuracy table's title without its backend part."""
    title = table.title.removeprefix("accuracy ")
    backend, dtype = _setup(table)
    return title.replace(f" · {backend} {dtype}", "")
