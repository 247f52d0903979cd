"""Regression checks for CI: baselines, the noise-aware gate, and claims as an exit code.

* ``baseline``: save a run as a compact, versioned JSON baseline (``save_baseline``) and read
  one back with every field validated (``load_baseline``); ``load_run`` reads a run folder
  (default: ``newest_run``, the shared rule of ``dfine_bench.records.store``).
* ``gate``: ``compare(baseline, run)`` -> ``CheckResult`` (rows, problems, ``exit_code`` 0/1/2);
  the rules and their defaults are in that module's docstring.
* ``render``: the console table and the markdown page for a pull request.
* ``claims_gate``: ``check_run_claims(name, records)`` for ``dfine-bench check --claims``.
"""

from dfine_bench.checks.baseline import (
    BASELINE_FORMAT_VERSION,
    Baseline,
    BaselineError,
    Entry,
    RunData,
    build_baseline,
    load_baseline,
    load_run,
    parse_baseline,
    save_baseline,
)
from dfine_bench.checks.claims_gate import ClaimsOutcome, check_run_claims
from dfine_bench.checks.gate import DEFAULT_TOLERANCES, CheckResult, Row, compare, resolve_tolerances
from dfine_bench.checks.render import render_markdown, render_text
from dfine_bench.records.store import newest_run  # re-exported: the one rule for "the newest run"

__all__ = [
    "BASELINE_FORMAT_VERSION",
    "DEFAULT_TOLERANCES",
    "Baseline",
    "BaselineError",
    "CheckResult",
    "ClaimsOutcome",
    "Entry",
    "Row",
    "RunData",
    "build_baseline",
    "check_run_claims",
    "compare",
    "load_baseline",
    "load_run",
    "newest_run",
    "parse_baseline",
    "render_markdown",
    "render_text",
    "resolve_tolerances",
    "save_baseline",
]
