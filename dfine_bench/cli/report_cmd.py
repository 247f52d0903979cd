"""``dfine-bench report``: the HTML + markdown report (tables, plots, claims, provenance) of runs."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

EXAMPLES = """\
examples:
  dfine-bench report                                 # the newest run -> reports/<run-id>/
  dfine-bench report results/<run-id> --out reports/my-report
  dfine-bench report results/<run-a> results/<run-b> --out reports/a-vs-b --title "A vs B"
  dfine-bench report results/<run-id> --no-claims

writes <out>/index.html (one self-contained file: tables, embedded plots, provenance and a plain
statement of what was a stand-in), <out>/README.md (GitHub markdown linking plots/*.png) and
<out>/plots/*.png|svg, and a .dfine-bench-report marker listing them. It writes only into a new
folder or one it made (the marker); any other folder needs --force, and even then no file it did
not write is deleted.
"""


def add_records_arguments(p: argparse.ArgumentParser, metavar: str) -> None:
    """The arguments ``report`` and ``compare`` share: which records, and which claims to check."""
    p.add_argument(
        "paths",
        nargs="*",
        metavar=metavar,
        help="run folders, results folders or record files (default: the newest run under --results-dir)",
    )
    p.add_argument(
        "--results-dir", default="results", metavar="DIR", help="where runs live (default: results)"
    )
    claims = p.add_mutually_exclusive_group()
    claims.add_argument(
        "--claims",
        default="dfine_paper",
        metavar="NAME",
        help="claim set under suites/claims/ or a YAML path to check against (default: dfine_paper)",
    )
    claims.add_argument("--no-claims", action="store_true", help="do not check any claims")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="HTML + markdown report with tables, plots, claims and provenance",
        description=(
            "Render the report of one or more runs: comparison tables, the paper claims table, "
            "plots (AP vs latency / params / GFLOPs with Pareto fronts, latency vs batch size, "
            "claimed-vs-measured deltas, precision-recall curves) and provenance."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_records_arguments(p, "RUN")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="report folder (default: reports/<run-id> for one run, reports/combined-<time> for several)",
    )
    p.add_argument("--title", help="the report's title (default: names the run)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into an existing folder dfine-bench did not make (index.html and README.md there are "
        "replaced; no other file is deleted)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from dfine_bench.reporting.folder import check_report_folder
    from dfine_bench.reporting.report import build_report
    from dfine_bench.reporting.runs import load_run_records, resolve_paths

    if args.out:  # a folder of the user's is refused before any record is read
        check_report_folder(args.out, force=args.force)
    paths = resolve_paths(args.paths, args.results_dir)
    records = load_run_records(paths)
    runs = sorted({r.run_id for r in records})
    if args.out:
        out = Path(args.out)
    elif len(runs) == 1:
        out = Path("reports") / runs[0]
    else:
        out = Path("reports") / f"combined-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    title = args.title or (
        f"dfine-bench report: run {runs[0]}" if len(runs) == 1 else f"dfine-bench report: {len(runs)} runs"
    )
    report = build_report(
        records, out, claims=None if args.no_claims else args.claims, title=title, force=args.force
    )
    print(f"report: {report / 'index.html'}  (markdown: {report / 'README.md'}, plots: {report / 'plots'})")
    return 0
