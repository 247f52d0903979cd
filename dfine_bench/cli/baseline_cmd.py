"""`dfine-bench baseline` (being written: see the module's owner)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="(not yet available)")
    p.set_defaults(func=lambda args: print("dfine-bench baseline: not yet available") or 2)
