"""``check --claims``: a run against the paper's claims, as an exit code for CI.

Uses ``dfine_bench.claims.check_claims``, ``claims_frame`` and ``verdict_counts`` (contract in
that package).
Exit 1 when any claim's verdict is ``fail``; 2 when no claim could be compared at all (every
verdict ``not measured`` or ``not comparable``, or no claims); 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from dfine_bench.records.schema import ResultRecord


@dataclass
class ClaimsOutcome:
    """The claims table and the exit code it adds up to, with a one-line summary."""

    name: str
    frame: pd.DataFrame
    exit_code: int
    summary: str


def check_run_claims(name: str, records: Sequence[ResultRecord]) -> ClaimsOutcome:
    """Check ``records`` against the claims file ``name`` (a name under suites/claims/ or a path).

    The counts come from ``dfine_bench.claims.verdict_counts``, so the summary lists verdicts in
    that package's ``VERDICTS`` order (pass, fail, ...) whatever the order of the claims file.
    """
    from dfine_bench.claims import check_claims, claims_frame, verdict_counts

    results = check_claims(name, list(records))
    frame = claims_frame(results)
    counts = verdict_counts(results)
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no claims"
    if counts.get("fail"):
        code = 1
    elif not counts.get("pass"):
        code = 2
        summary = f"nothing could be compared ({summary})"
    else:
        code = 0
    return ClaimsOutcome(name=name, frame=frame, exit_code=code, summary=summary)
