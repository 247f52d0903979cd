"""`dfine-bench check` (being written: see the module's owner)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="(not yet available)")
    p.set_defaults(func=lambda args: print("dfine-bench check: not yet available") or 2)
