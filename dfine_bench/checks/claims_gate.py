"""``check --claims``: a run against the paper's claims, as an exit code for CI.

The claims are checked and tabulated by ``dfine_bench.reporting.claims_table.ClaimsTable`` (the
same table ``compare`` and reports show); this module only turns its verdict counts into an
exit code: 1 when any claim's verdict is ``fail``; 2 when no claim could be compared at all
(every verdict ``not measured`` or ``not comparable``, or no claims); 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dfine_bench.records.schema import ResultRecord

if TYPE_CHECKING:
    from dfine_bench.reporting.claims_table import ClaimsTable


@dataclass
class ClaimsOutcome:
    """The checked claims and the exit code they add up to, with a one-line summary."""

    table: ClaimsTable
    exit_code: int
    summary: str


def check_run_claims(name: str, records: Sequence[ResultRecord]) -> ClaimsOutcome:
    """Check ``records`` against the claims file ``name`` (a name under suites/claims/ or a path).

    The summary lists verdicts in ``dfine_bench.claims.VERDICTS`` order (pass, fail, ...)
    whatever the order of the claims file.
    """
    # imported here: dfine_bench.reporting loads matplotlib, and `import dfine_bench.checks`
    # (the gate as a library) should not
    from dfine_bench.reporting.claims_table import check_claims_table

    table = check_claims_table(records, name)
    assert table is not None  # a name was given
    counts = table.counts()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) or "no claims"
    if counts.get("fail"):
        code = 1
    elif not counts.get("pass"):
        code = 2
        summary = f"nothing could be compared ({summary})"
    else:
        code = 0
    return ClaimsOutcome(table=table, exit_code=code, summary=summary)
