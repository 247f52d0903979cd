"""``dfine-bench baseline``: save a run as a baseline for ``check`` (``save``), or describe one (``show``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dfine_bench.checks.baseline import (
    BaselineError,
    check_baseline_target,
    load_baseline,
    load_run,
    noisy_latencies,
    save_baseline,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="save a run as a baseline for `check` (baseline save), or show one",
        description=(
            "Baselines are small JSON files (metric values, latency samples, setup and provenance) "
            "meant to be committed under results/baselines/ and used by `dfine-bench check --baseline`."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="<action>")
    save = actions.add_parser(
        "save",
        help="write a baseline from a run",
        description="Write a baseline from a finished run (default: the newest under --results-dir).",
        epilog="example: dfine-bench baseline save results/ci --out results/baselines/ci.json",
    )
    save.add_argument("run", nargs="?", help="run folder (default: the newest run under --results-dir)")
    save.add_argument(
        "--out",
        metavar="FILE",
        help="baseline file to write (default: results/baselines/<suite>.json)",
    )
    save.add_argument(
        "--results-dir", default="results", help="where to find the newest run (default: results)"
    )
    save.add_argument(
        "--allow-failed",
        action="store_true",
        help="save even though some records failed or were skipped (they will not be gated)",
    )
    save.set_defaults(func=save_main)
    show = actions.add_parser("show", help="print a baseline's provenance and records")
    show.add_argument("file", help="baseline JSON file")
    show.set_defaults(func=show_main)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def save_main(args: argparse.Namespace) -> int:
    if args.out:  # refused before any record is read
        check_baseline_target(args.out)
    run = load_run(args.run, args.results_dir)
    status = run.meta.get("status")
    if run.meta and status != "complete":
        raise BaselineError(
            f"run {run.run_dir} is {status!r}, not complete: finish it (re-run the same command) "
            "before saving it as a baseline"
        )
    unclean = sorted(f"{e.record_id} ({e.status})" for e in run.entries.values() if e.status != "ok")
    if unclean and not args.allow_failed:
        raise BaselineError(
            f"run {run.run_dir} has records that are not ok: {', '.join(unclean)}; a baseline should be "
            "clean (those records would not be gated): fix them, or pass --allow-failed"
        )
    out = (
        Path(args.out)
        if args.out
        else Path(args.results_dir) / "baselines" / f"{run.meta.get('suite') or 'baseline'}.json"
    )
    existed = out.exists()
    save_baseline(run, out)
    size = out.stat().st_size
    print(
        f"{'updated' if existed else 'wrote'} {out} ({len(run.entries)} records, {size / 1024:.1f} KiB) "
        f"from run {run.run_id}"
    )
    if unclean:
        print(f"not gated (not ok in this run): {', '.join(unclean)}")
    noisy = noisy_latencies(run.entries)
    if noisy:
        shown = ", ".join(f"{rid} (p90 = {spread:.1f} x median)" for rid, spread in sorted(noisy.items()))
        print(
            f"warning: noisy latency samples: {shown}; the gate's band widens with the baseline's spread, so "
            "these timings are only loosely gated: save the baseline on a quiet machine"
        )
    print(f"check a run against it: dfine-bench check --baseline {out} <run>")
    return 0


def show_main(args: argparse.Namespace) -> int:
    baseline = load_baseline(args.file)
    prov = baseline.provenance
    print(
        f"baseline {args.file}: format v{baseline.format_version}, "
        f"records schema v{baseline.record_schema_version}"
    )
    for key in (
        "run_id",
        "suite",
        "config_hash",
        "git_revision",
        "git_dirty",
        "device",
        "device_name",
        "saved_at",
    ):
        print(f"  {key}: {prov.get(key)}")
    versions = prov.get("versions") or {}
    print("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    if baseline.tolerances:
        print("  tolerances: " + ", ".join(f"{k}={v:g}" for k, v in baseline.tolerances.items()))
    for rid, e in sorted(baseline.entries.items()):
        extra = f" [{e.status}]" if e.status != "ok" else ""
        samples = f", {len(e.samples_ms)} {e.samples_kind}" if e.samples_ms else ""
        print(f"  {rid}{extra}: {len(e.metrics)} metrics{samples}")
    return 0
