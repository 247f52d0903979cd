"""Plain-text helpers for the command line: name matching and aligned tables, with no pandas.

``list models`` prints through these so that it starts in well under a second (pandas alone
costs about half a second to import).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


def normalize_name(value: str) -> str:
    """Case- and punctuation-blind form for matching names: "D-FINE", "d_fine" and "dfine" agree."""
    return re.sub(r"[^a-z0-9]+", "", value.lower())


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as right-aligned columns under a header line (like ``DataFrame.to_string(index=False)``)."""
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [" ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += [" ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
