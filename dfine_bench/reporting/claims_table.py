"""The claims table: each paper claim with the claimed value, the measured one, delta and verdict.

The checking itself is ``dfine_bench.claims`` (``check_claims`` + ``claims_frame``); this module
only asks it and shapes the answer for reports: the columns ``dfine_bench.claims.CLAIM_COLUMNS``,
a short form for display, and counts per verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from dfine_bench.claims import VERDICTS, check_claims, claims_frame
from dfine_bench.records.schema import ResultRecord

#: Verdicts in the order reports list their counts.
VERDICT_ORDER = VERDICTS
#: Verdicts shown in the main claims table; the rest ("not measured") are listed folded away.
SHOWN_VERDICTS = ("pass", "fail", "not comparable")
#: Columns of the folded list of claims that no record covers.
FOLDED_COLUMNS = ("claim", "source", "claimed", "unit", "verdict", "reason")
NO_CLAIMS = "No claim set was given: no claims were checked."


@dataclass
class ClaimsTable:
    """The checked claims of one claim set; ``frame`` is None when they could not be checked (``note``)."""

    name: str
    frame: pd.DataFrame | None
    note: str | None = None

    def counts(self) -> dict[str, int]:
        if self.frame is None or self.frame.empty:
            return {}
        counts = self.frame["verdict"].value_counts().to_dict()
        known = {v: int(counts.pop(v)) for v in VERDICT_ORDER if v in counts}
        return {**known, **{str(k): int(v) for k, v in counts.items()}}

    def summary(self) -> str:
        if self.frame is None:
            return self.note or f"claims {self.name!r} not checked"
        if self.frame.empty:
            return f"claims {self.name!r}: no claims"
        parts = ", ".join(f"{n} {v}" for v, n in self.counts().items())
        return f"claims {self.name!r}: {len(self.frame)} checked — {parts}"

    def display_frame(self, verdicts: Sequence[str] | None = None) -> pd.DataFrame:
        """The table as reports show it: one row per claim (only ``verdicts`` if given), short
        headers, and the device · backend · dtype it was measured on."""
        if self.frame is None:
            return pd.DataFrame()
        f = self.frame if verdicts is None else self.frame[self.frame["verdict"].isin(list(verdicts))]
        dtypes = f["dtype"] if "dtype" in f.columns else [None] * len(f)
        where = [
            " · ".join(str(x) for x in (d, b, t) if isinstance(x, str) and x)
            for d, b, t in zip(f["device_name"], f["backend"], dtypes)
        ]
        claim = f["text"].fillna(f["claim_id"])  # the claim in words, else its id
        return pd.DataFrame(
            {
                "claim": claim,
                "source": f["source"],
                "model": f["model"],
                "metric": f["metric"],
                "unit": f["unit"],
                "claimed": f["claimed"],
                "measured": f["measured"],
                "delta": f["delta"],
                "verdict": f["verdict"],
                "measured on": where,
                "reason": f["reason"],
            }
        )


def check_claims_table(records: Sequence[ResultRecord], claims: str | None) -> ClaimsTable | None:
    """Check ``records`` against the claim set ``claims`` (a name under suites/claims/ or a YAML path).

    ``None`` when no claims were asked for. A claims checker that is not installed gives a table
    with a note instead of a frame; a bad claim set name or file is the checker's error.
    """
    if not claims:
        return None
    frame = claims_frame(check_claims(claims, list(records)))
    return ClaimsTable(claims, frame.reset_index(drop=True))
