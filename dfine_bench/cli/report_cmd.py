"""`dfine-bench report` (being written: see the module's owner)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="(not yet available)")
    p.set_defaults(func=lambda args: print("dfine-bench report: not yet available") or 2)
