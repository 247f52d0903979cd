"""The claims table: each paper claim with the claimed value, the measured one, delta and verdict.

The checking itself is ``dfine_bench.claims`` (``check_claims``, ``claims_frame``,
``verdict_counts``); this module only asks it and shapes the answer for reports: the columns
``dfine_bench.claims.CLAIM_COLUMNS``, a short form for display, and counts per verdict.
Claims that name small-scale evidence (the FDR ablation beside the paper's unmeasurable gains)
get an ``evidence`` column next to their verdict; it never changes the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from dfine_bench.claims import ClaimResult, check_claims, claims_frame, verdict_counts
from dfine_bench.records.schema import ResultRecord

#: Verdicts shown in the main claims table; the rest ("not measured") are listed folded away.
SHOWN_VERDICTS = ("pass", "fail", "not significant", "not comparable")
#: Columns of the folded list of claims that no record covers.
FOLDED_COLUMNS = ("claim", "source", "claimed", "unit", "verdict", "reason")
NO_CLAIMS = "No claim set was given: no claims were checked."


@dataclass
class ClaimsTable:
    """The checked claims of one claim set: the checker's results and, from them, ``frame``
    (one row per result, columns ``dfine_bench.claims.CLAIM_COLUMNS``)."""

    name: str
    results: list[ClaimResult]
    frame: pd.DataFrame = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.frame = claims_frame(self.results).reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        """Claims per verdict, in the checker's verdict order; verdicts no claim got are left out."""
        return {v: n for v, n in verdict_counts(self.results).items() if n}

    def summary(self) -> str:
        """One line: how many claims were checked and how many got each verdict."""
        if not self.results:
            return f"claims {self.name!r}: no claims"
        parts = ", ".join(f"{n} {v}" for v, n in self.counts().items())
        return f"claims {self.name!r}: {len(self.results)} checked — {parts}"

    def display_frame(self, verdicts: Sequence[str] | None = None) -> pd.DataFrame:
        """The table as reports show it: one row per claim (only ``verdicts`` if given), short
        headers, and the device · backend · dtype it was measured on."""
        f = self.frame if verdicts is None else self.frame[self.frame["verdict"].isin(list(verdicts))]
        where = [
            " · ".join(str(x) for x in (d, b, t) if isinstance(x, str) and x)
            for d, b, t in zip(f["device_name"], f["backend"], f["dtype"])
        ]
        claim = f["text"].fillna(f["claim_id"])  # the claim in words, else its id
        shown = pd.DataFrame(
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
        evidence = f["evidence"].fillna("")
        if evidence.astype(bool).any():  # only tables where some claim has evidence get the column
            shown["evidence"] = list(evidence)
        return shown

    def folded_frame(self) -> pd.DataFrame:
        """The claims reports fold away (verdicts outside ``SHOWN_VERDICTS``), in ``FOLDED_COLUMNS``."""
        rest = self.display_frame([v for v in self.frame["verdict"].unique() if v not in SHOWN_VERDICTS])
        return rest[[*FOLDED_COLUMNS, *(["evidence"] if "evidence" in rest else [])]]


def check_claims_table(records: Sequence[ResultRecord], claims: str | None) -> ClaimsTable | None:
    """Check ``records`` against the claim set ``claims`` (a name under suites/claims/ or a YAML path).

    ``None`` (or an empty name) when no claims were asked for; a bad claim set name or file is
    the checker's error.
    """
    if not claims:
        return None
    return ClaimsTable(claims, check_claims(claims, list(records)))
