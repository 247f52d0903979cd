"""The ``dfine-bench`` command: one console script, one module per subcommand.

Each module in this package defines ``add_parser(subparsers)``, which adds its
subcommand with ``set_defaults(func=...)``; ``func(args) -> int`` is the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from dfine_bench import __version__
from dfine_bench.errors import DfineBenchError

#: Subcommand modules, in the order `--help` lists them.
SUBCOMMANDS = ("run", "profile", "evaluate", "compare", "report", "check", "baseline", "list")


def build_parser() -> argparse.ArgumentParser:
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
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"dfine_bench.cli.{name}_cmd")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        argv = ["run"]  # the main job: the default suite with built-in defaults
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
