"""Turning table values into text: numbers with their column's precision, markers, markdown tables.

Shared by the HTML report, the markdown report and ``dfine-bench compare`` so a number reads
the same everywhere. Empty cells (nothing measured under the column's conditions) print as
``NOT_MEASURED``; ``failed`` / ``skipped`` print as they are.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dfine_bench.reporting.tables import NOT_MEASURED, ComparisonTable

#: The legend printed under tables.
LEGEND = (
    f"{NOT_MEASURED} = not measured under this column's conditions; "
    "failed / skipped = the task ran but gave no number (see the record's reason)"
)


def format_number(value: Any, fmt: str = "{:.2f}") -> str:
    """A value as text: floats with ``fmt``, integers plainly, missing values as the not-measured mark."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return NOT_MEASURED
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return fmt.format(value)
    return str(value)


def formatted_frame(table: ComparisonTable) -> pd.DataFrame:
    """The table with every cell as text (keeps MultiIndex column headers of the overview)."""
    frame = table.frame.copy()
    for col in frame.columns:
        key = f"{col[0]} | {col[1]}" if isinstance(col, tuple) else col
        spec = table.columns.get(key)
        fmt = spec.fmt if spec is not None else "{:.2f}"
        frame[col] = [
            format_number(v, fmt) if spec is not None else ("" if _missing(v) else str(v)) for v in frame[col]
        ]
    return frame


def format_claims(frame: pd.DataFrame) -> pd.DataFrame:
    """A claims display frame as text: claimed/measured/delta numbers to 4 significant digits
    (``0.1234``, ``42.8``, ``1235``; delta signed)."""
    out = frame.copy()
    for col in out.columns:
        if col in ("claimed", "measured", "delta"):
            out[col] = [_claim_number(v, signed=col == "delta") for v in out[col]]
        else:
            out[col] = ["" if _missing(v) else str(v) for v in out[col]]
    return out


def _claim_number(v: Any, *, signed: bool = False) -> str:
    """A claimed / measured / delta value to 4 significant digits (what ``format_claims`` prints).

    >>> _claim_number(42.8), _claim_number(3.7412), _claim_number(0.0123456), _claim_number(12345.6)
    ('42.8', '3.741', '0.01235', '1.235e+04')
    >>> _claim_number(-0.5, signed=True), _claim_number(1.23456, signed=True), _claim_number(None)
    ('-0.5', '+1.235', '—')
    """
    if _missing(v):
        return NOT_MEASURED
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:+.4g}" if signed else f"{v:.4g}"
    return str(v)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def flat_headers(frame: pd.DataFrame) -> list[str]:
    """Column headers as single strings; a (conditions, column) pair becomes ``"conditions: column"``."""
    out = []
    for col in frame.columns:
        if isinstance(col, tuple):
            out.append(f"{col[0]}: {col[1]}" if col[0] else str(col[1]))
        else:
            out.append(str(col))
    return out


def _md_cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub pipe table of an all-text frame (``|`` and newlines in cells are escaped)."""
    headers = flat_headers(frame)
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def text_table(frame: pd.DataFrame) -> str:
    """A plain-text table for the terminal."""
    flat = frame.copy()
    flat.columns = flat_headers(frame)
    return flat.to_string(index=False)
