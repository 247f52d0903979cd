"""What the report's plots take from a ``Comparison`` besides its numbers: the records behind a
table's rows, the stand-in and evaluation-setup words those records call for, and one colour per
family (or model), so that every plot module names and colours its points the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib

from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels
from dfine_bench.reporting.tables import Comparison, ComparisonTable


def stand_in_of(cmp: Comparison, tables: Iterable[ComparisonTable], keys: Iterable[tuple[str, ...]]) -> str:
    """The stand-in words (``labels.stand_in_text``) of the records behind ``keys`` in ``tables``."""
    reasons: set[str] = set()
    keys = set(keys)
    for t in tables:
        for r in table_records(cmp, t, keys):
            reasons.update(labels.stand_in_reasons(r))
    return labels.stand_in_text(reasons)


def table_records(
    cmp: Comparison, table: ComparisonTable, keys: set[tuple[str, ...]] | None = None
) -> list[ResultRecord]:
    """The records behind ``table``'s rows (only the rows in ``keys``, when given), in row order."""
    out: list[ResultRecord] = []
    for key in table.row_keys:
        if keys is None or key in keys:
            out.extend(cmp.sources.get((key, table.title), []))
    return out


def eval_setups(cmp: Comparison, table: ComparisonTable, keys: set[tuple[str, ...]]) -> str:
    """``evaluated on <setup>; ...`` for the records behind ``keys`` ("" when there are none)."""
    setups = sorted({labels.setup_label(r.setup) for r in table_records(cmp, table, keys)})
    return "evaluated on " + "; ".join(setups) if setups else ""


def family_colors(families: Sequence[str]) -> dict[str, Any]:
    """One tab10 colour per distinct name, assigned in sorted name order."""
    cmap = matplotlib.colormaps["tab10"]
    return {f: cmap(i % 10) for i, f in enumerate(sorted(set(families)))}
