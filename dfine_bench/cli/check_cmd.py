"""``dfine-bench check``: the CI gate. Exit 0 (no regression), 1 (regression), 2 (cannot compare).

``--baseline FILE`` compares a run with a stored baseline (rules: ``dfine_bench.checks.rules``);
``--claims NAME`` checks it against the paper's claims. With neither, the run's own
``suite.baseline`` (from its ``run.json``) is used. Both together: the worse exit code wins
(1 over 2 over 0).

Exit 1 means "regression" and nothing else: a crash inside the check (a bug, not a finding) is
caught here and exits 2 ("cannot compare"), where the CLI's generic path would let it escape
as a traceback with exit 1.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from dfine_bench.checks.baseline import BaselineError, RunData, load_baseline, load_run
from dfine_bench.checks.claims_gate import check_run_claims
from dfine_bench.checks.gate import compare
from dfine_bench.checks.render import render_error_markdown, render_markdown, render_text
from dfine_bench.errors import DfineBenchError
from dfine_bench.utils.files import atomic_write_text

EPILOG = """\
exit codes: 0 no regression, 1 regression, 2 cannot compare (another model set, device, backend,
dataset, weights or schema; a missing metric; a corrupt baseline; an error in the check itself).
Both a regression and something that cannot be compared: 1.

examples:
  dfine-bench check --baseline results/baselines/ci.json results/ci --markdown check.md
  dfine-bench check                                   # newest run against its suite.baseline
  dfine-bench check --baseline b.json --tolerance latency_median=0.5 --tolerance AP=0.2
  dfine-bench check --claims dfine_paper results/<run-id>
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="regression gate: a run against a baseline or the paper's claims (exit 0 / 1 / 2)",
        description=(
            "Compare a run with a stored baseline (--baseline) or the paper's claims (--claims) and "
            "exit 0 (no regression), 1 (regression) or 2 (cannot compare). Accuracy uses absolute "
            "tolerances, params and GFLOPs must be equal, latency and throughput use a noise-aware "
            "rule on the stored samples (see dfine_bench/checks/rules.py)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", nargs="?", help="run folder (default: the newest run under --results-dir)")
    p.add_argument("--baseline", metavar="FILE", help="baseline JSON (default: the run's suite.baseline)")
    p.add_argument("--claims", metavar="NAME", help="claims file under suites/claims/ (or a path) to check")
    p.add_argument("--results-dir", default="results", help="where to find the newest run (default: results)")
    p.add_argument("--markdown", metavar="FILE", help="also write the outcome as markdown (a PR comment)")
    p.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="override one tolerance (repeatable), e.g. latency_median=0.5 or AP=0.2",
    )
    p.add_argument(
        "--allow-other-device",
        action="store_true",
        help="baseline from another machine: gate accuracy, params and GFLOPs; show timings as not compared",
    )
    p.add_argument(
        "--all", dest="full", action="store_true", help="list every compared value, not only changes"
    )
    p.set_defaults(func=main)


def parse_tolerances(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BaselineError(
                f"--tolerance {item!r}: write METRIC=VALUE, e.g. --tolerance latency_median=0.5"
            )
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise BaselineError(f"--tolerance {item!r}: {value!r} is not a number") from None
    return out


def _baseline_path(args: argparse.Namespace, run: RunData) -> Path | None:
    if args.baseline:
        return Path(args.baseline)
    if run.suite_baseline and not args.claims:
        return Path(run.suite_baseline)
    return None


def main(args: argparse.Namespace) -> int:
    markdown: list[str] = []
    try:
        code = _check(args, markdown)
    except DfineBenchError as exc:
        _write_error_markdown(args, str(exc))
        raise  # the CLI prints it and exits 2
    except BrokenPipeError:
        raise  # the reader closed stdout (`| head`): the CLI's concern, not a bug in the check
    except Exception as exc:  # a bug in the check is not a regression: never exit 1 for it
        message = f"internal error: {type(exc).__name__}: {exc}"
        print(
            f"dfine-bench check: {message} (exit 2, cannot compare; a bug in the check, not a finding "
            "about the run: the traceback follows)",
            file=sys.stderr,
        )
        traceback.print_exc(file=sys.stderr)
        _write_error_markdown(args, f"{message} (the traceback is in the job's log)")
        return 2
    if args.markdown:
        try:
            atomic_write_text(args.markdown, "\n".join(markdown))
        except OSError as exc:
            print(f"dfine-bench check: could not write {args.markdown}: {exc}", file=sys.stderr)
            return code if code == 1 else 2  # keep a regression's 1; otherwise the outcome is lost
        print(f"\nmarkdown: {args.markdown}")
    return code


def _write_error_markdown(args: argparse.Namespace, message: str) -> None:
    """The "cannot compare" page for ``--markdown``; a failure to write it must not hide ``message``."""
    if not args.markdown:
        return
    try:
        atomic_write_text(args.markdown, render_error_markdown(message))
    except OSError as exc:
        print(f"dfine-bench check: could not write {args.markdown}: {exc}", file=sys.stderr)


def _check(args: argparse.Namespace, markdown: list[str]) -> int:
    tolerances = parse_tolerances(args.tolerance)
    run = load_run(args.run, args.results_dir)
    baseline_path = _baseline_path(args, run)
    if baseline_path is None and not args.claims:
        raise BaselineError(
            f"nothing to check {run.run_dir} against: give --baseline FILE or --claims NAME "
            "(the run's suite sets no suite.baseline)"
        )
    codes: list[int] = []
    if baseline_path is not None:
        baseline = load_baseline(baseline_path)
        result = compare(baseline, run, tolerances=tolerances, allow_other_device=args.allow_other_device)
        print(render_text(result, full=args.full))
        markdown.append(render_markdown(result, full=args.full))
        codes.append(result.exit_code)
    if args.claims:
        from dfine_bench.reporting.formatting import format_claims, markdown_table, text_table

        outcome = check_run_claims(args.claims, run.records)
        title = f"claims {args.claims}: {outcome.summary} (exit {outcome.exit_code})"
        if codes:
            print()
        print(title)
        shown = format_claims(outcome.table.display_frame())  # the table compare and reports show
        if not shown.empty:
            print(text_table(shown))
        markdown.append(f"## dfine-bench check --{title}\n\n{markdown_table(shown)}\n")
        codes.append(outcome.exit_code)
    sys.stdout.flush()
    if 1 in codes:
        return 1
    return 2 if 2 in codes else 0
