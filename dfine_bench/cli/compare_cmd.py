"""``dfine-bench compare``: comparison tables of result records, and the paper claims table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dfine_bench.checks.fingerprint import incomparable_timings
from dfine_bench.cli.report_cmd import add_records_arguments
from dfine_bench.errors import DfineBenchError
from dfine_bench.records.schema import TASKS
from dfine_bench.utils.files import atomic_write_text

if TYPE_CHECKING:  # pandas and the reporting layer load when the command runs, not at --help
    import pandas as pd

    from dfine_bench.reporting.claims_table import ClaimsTable
    from dfine_bench.reporting.tables import Comparison

EXAMPLES = """\
examples:
  dfine-bench compare                                # the newest run under results/
  dfine-bench compare results/<run-id> results/<other-run-id>
  dfine-bench compare --family d-fine --backend eager
  dfine-bench compare --device cuda --task latency --task throughput
  dfine-bench compare --reference dfine_s/onnxruntime      # paired ΔAP of every evaluation against it
  dfine-bench compare results/ --no-claims --markdown compare.md --csv compare.csv

Numbers from different devices, backends or precisions are never merged into one column: each
(device name, backend, dtype) gets its own table. --device and --backend select latency,
throughput and trace records (accuracy and params/GFLOPs do not depend on them); claims are
checked against every record given, whatever the filters. Rows marked "stand-in" come from
random-init weights or generated data and are no model's accuracy. In tables, "—" means not
measured under that column's conditions; failed / skipped means the task ran and gave no number.
AP carries a 95% bootstrap interval over images; ΔAP against the reference row (--reference) is a
paired bootstrap (both evaluations resampled alike), "*" marking a difference beyond the noise of
the image sample; evaluations of other images, datasets or annotations are not paired (the reason
is named).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="comparison tables of result records, and measured vs claimed (delta, verdict)",
        description=(
            "Print comparison tables of result records (models as rows; accuracy, params/GFLOPs, "
            "latency/FPS/throughput per device, backend and precision as columns) and the paper "
            "claims table (claimed, measured, delta, verdict)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_records_arguments(p, "RUN_OR_RESULTS_DIR")
    p.add_argument(
        "--device",
        help="speed records of this device only: cpu, cuda, cuda:0, or part of its name (T4, EPYC)",
    )
    p.add_argument(
        "--backend", help="speed records of this backend only (a name `dfine-bench list backends` shows)"
    )
    p.add_argument("--family", help="only this model family (case and dashes ignored: d-fine = dfine)")
    p.add_argument(
        "--task",
        action="append",
        choices=TASKS,
        metavar="TASK",
        help=f"only these tasks; repeatable ({', '.join(TASKS)})",
    )
    p.add_argument(
        "--reference",
        metavar="MODEL[/BACKEND[-DTYPE]][@RUN]",
        help="the evaluation every other is compared with (paired ΔAP, its CI and p-value); default: "
        "the first eager fp32 evaluation of each set of images (e.g. dfine_s, dfine_s/onnxruntime, "
        "dfine_s/tensorrt-fp16, dfine_s@<run-id>)",
    )
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown to FILE")
    p.add_argument("--csv", metavar="FILE", help="also write every table's values as one wide CSV to FILE")
    p.set_defaults(func=main)


def main(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    from dfine_bench.reporting.claims_table import check_claims_table
    from dfine_bench.reporting.formatting import LEGEND, formatted_frame
    from dfine_bench.reporting.provenance import stand_in_statement
    from dfine_bench.reporting.runs import load_run_records, resolve_paths
    from dfine_bench.reporting.selection import unique_records
    from dfine_bench.reporting.significance import mark_accuracy_tables, significance_table
    from dfine_bench.reporting.tables import build_comparison

    out = stream or sys.stdout
    paths = resolve_paths(args.paths, args.results_dir)
    records = load_run_records(paths)
    cmp = build_comparison(
        records, device=args.device, backend=args.backend, family=args.family, tasks=args.task
    )
    # before any output: a --reference that names no record is refused with one line
    paired = significance_table(cmp.records, getattr(args, "reference", None))
    mark_accuracy_tables(cmp, paired)
    # the filters choose what the tables show; a claim is checked against every record, so a
    # filtered-out record never turns a measured claim into "not measured"
    every = unique_records(records)
    claims = None if args.no_claims else check_claims_table(every, args.claims)

    runs = sorted({r.run_id for r in cmp.records})
    print(
        f"{len(cmp.records)} record(s) from {', '.join(str(p) for p in paths)} (run(s) {', '.join(runs)})",
        file=out,
    )
    statement = stand_in_statement(cmp.records)
    if statement:
        print("\nSTAND-INS AND DEVIATIONS:", file=out)
        for line in statement:
            print(f"  - {line}", file=out)
    md: list[str] = []
    incomparable = incomparable_timings(cmp.records)  # environment fingerprints (checks.fingerprint)
    if incomparable:
        print("\nNOT COMPARABLE (environment fingerprints differ in a field that changes speed):", file=out)
        for line in incomparable:
            print(f"  - {line}", file=out)
        md += ["## Not comparable", "", *(f"- {line}" for line in incomparable), ""]
    for t in cmp.tables:
        md += _section(t.title, t.notes, formatted_frame(t), out)
    if paired is not None:
        md += _section(paired.title, paired.notes, paired.frame, out)
    if not cmp.tables:
        print("\n(no evaluation, complexity, latency or throughput records among these)", file=out)
    print(f"\n{LEGEND}", file=out)
    if claims is not None:
        md += _claims_section(claims, len(every), len(cmp.records), out)
    _write_files(args, cmp, runs, statement, md, out)
    return 0


def _section(title: str, notes: list[str], frame: pd.DataFrame, out: TextIO) -> list[str]:
    """Print one titled table (text cells) with its notes; returns its markdown lines."""
    from dfine_bench.reporting.formatting import markdown_table, text_table

    print(f"\n== {title} ==", file=out)
    for n in notes:
        print(f"   {n}", file=out)
    print(text_table(frame), file=out)
    return [f"## {title}", "", *(f"- {n}" for n in notes), "", markdown_table(frame), ""]


def _claims_section(claims: ClaimsTable, checked: int, shown: int, out: TextIO) -> list[str]:
    """Print the claims table (``checked`` records judged them, ``shown`` are in the tables)."""
    from dfine_bench.reporting.formatting import format_claims, markdown_table, text_table

    print(f"\n== {claims.summary()} ==", file=out)
    md = ["## Paper claims", "", claims.summary(), ""]
    if checked != shown:
        scope = f"checked against all {checked} record(s): the filters apply to the tables only"
        print(f"   {scope}", file=out)
        md += [scope[0].upper() + scope[1:] + ".", ""]
    if not claims.frame.empty:
        frame = format_claims(claims.display_frame())
        print(text_table(frame), file=out)
        md += [markdown_table(frame), ""]
    return md


def _write_files(
    args: argparse.Namespace,
    cmp: Comparison,
    runs: list[str],
    statement: list[str],
    md: list[str],
    out: TextIO,
) -> None:
    """``--markdown`` and ``--csv``: the printed tables as markdown, every table value as CSV."""
    from dfine_bench.reporting.formatting import LEGEND

    if args.markdown:
        head = [f"# dfine-bench compare: {', '.join(runs)}", ""]
        if statement:
            head += [
                "> [!WARNING]",
                "> **Stand-ins and deviations:**",
                ">",
                *(f"> - {s}" for s in statement),
                "",
            ]
        atomic_write_text(Path(args.markdown), "\n".join([*head, *md, LEGEND, ""]))
        print(f"\nmarkdown: {args.markdown}", file=out)
    if args.csv:
        if not cmp.tables:
            raise DfineBenchError(f"--csv {args.csv}: these records hold no table values to write")
        atomic_write_text(Path(args.csv), cmp.flat_frame().to_csv(index=False))
        print(f"csv: {args.csv}", file=out)
