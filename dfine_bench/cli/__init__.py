"""The ``dfine-bench`` command: one console script, one module per subcommand.

Each module in this package defines ``add_parser(subparsers)``, which adds its
subcommand with ``set_defaults(func=...)``; ``func(args) -> int`` is the exit code.

Only the module of the command being run is imported (``dfine-bench --help`` imports none):
each pulls in what it needs (torch, Hydra, pandas, matplotlib), which costs seconds.
``SUBCOMMANDS`` holds each command's one-line summary for the top-level help; a test checks it
against the help each module gives.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Collection, Sequence

from dfine_bench import __version__
from dfine_bench.errors import DfineBenchError

#: Subcommand modules (``<name>_cmd``) and their summaries, in the order `--help` lists them.
SUBCOMMANDS: dict[str, str] = {
    "run": "run a suite: evaluation + profiling per model, records, report (default command)",
    "profile": "profile models only: params, GFLOPs, latency, throughput, memory, traces",
    "train": "train a model (the project's fixture, small ablations): weights, loss curve, record",
    "ablate": "small-scale FDR / GO-LSD ablation: baseline vs +FDR vs +FDR+GO-LSD over seeds",
    "evaluate": "evaluate a COCO results file against an annotation file (no model needed)",
    "compare": "comparison tables of result records, and measured vs claimed (delta, verdict)",
    "report": "HTML + markdown report with tables, plots, claims and provenance",
    "check": "regression gate: a run against a baseline or the paper's claims (exit 0 / 1 / 2)",
    "baseline": "save a run as a baseline for `check` (baseline save), or show one",
    "list": "list registered models, suites, datasets, backends, protocols, weights, claims",
}


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first positional argument), if it is one."""
    for arg in argv:
        if arg in ("-h", "--help", "--version"):
            return None
        if not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; ``load`` limits which subcommand modules are imported (the others are
    listed by their summary only). ``None`` imports all."""
    parser = argparse.ArgumentParser(
        prog="dfine-bench",
        description=(
            "Benchmark and evaluate real-time DETR detectors (D-FINE, RT-DETR, DEIM, ...): "
            "COCO AP, params, GFLOPs, latency and throughput, reports and CI regression checks."
        ),
        epilog="Run `dfine-bench <command> --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"dfine-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, summary in SUBCOMMANDS.items():
        if load is None or name in load:
            importlib.import_module(f"dfine_bench.cli.{name}_cmd").add_parser(sub)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["run"]  # the main job: the default suite with built-in defaults
    command = command_of(argv)
    parser = build_parser(load=[command] if command else [])
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if unknown:
        args.overrides = [*getattr(args, "overrides", []), *unknown]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DfineBenchError as exc:
        logging.getLogger("dfine_bench").debug("error", exc_info=True)
        print(f"dfine-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dfine-bench {args.command}: interrupted; records written so far are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader closed the pipe (`dfine-bench list | head`): nothing of ours failed. Point
        # stdout at devnull so the interpreter's final flush does not raise again (Python docs,
        # "Note on SIGPIPE"), and exit as a process killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
