"""Finding runs on disk for ``compare`` and ``report``: the newest run, or the folders given.

A run folder is ``results/<run-id>/`` with ``run.json`` and ``records/``. Given nothing,
commands use the newest run under ``results/`` that has records, by the rule every command
shares (``dfine_bench.records.store.newest_run``); given paths, each may be a run folder, a
results root or a single record file (as ``dfine_bench.records.load_records``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dfine_bench.errors import DfineBenchError
from dfine_bench.records.schema import ResultRecord
from dfine_bench.records.store import load_records, newest_run


def resolve_paths(paths: Sequence[str], results_dir: str | os.PathLike[str] = "results") -> list[Path]:
    """The given paths (checked to exist), or the newest run when none is given."""
    if not paths:
        return [newest_run(results_dir)]
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise DfineBenchError(
                f"{p} does not exist: give a run folder (results/<run-id>), a results folder or a record file"
            )
        out.append(p)
    return out


def load_run_records(paths: Sequence[Path]) -> list[ResultRecord]:
    """Records from ``paths``; none at all is an error naming where it looked."""
    try:
        records = load_records(paths)
    except FileNotFoundError as exc:
        raise DfineBenchError(str(exc)) from None
    if not records:
        where = ", ".join(str(p) for p in paths)
        raise DfineBenchError(
            f"no records in {where} (records of another schema version are skipped with a warning): "
            "run `dfine-bench run` first, or give a run folder that holds records/"
        )
    return records
