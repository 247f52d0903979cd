"""Finding runs on disk for ``compare`` and ``report``: the newest run, or the folders given.

A run folder is ``results/<run-id>/`` with ``run.json`` and ``records/``. Given nothing,
commands use the newest run under ``results/`` that has records; given paths, each may be a
run folder, a results root or a single record file (as ``dfine_bench.records.load_records``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from dfine_bench.errors import DfineBenchError
from dfine_bench.records.schema import ResultRecord
from dfine_bench.records.store import load_records


def _started(run_dir: Path) -> str:
    try:
        meta = json.loads((run_dir / "run.json").read_text())
        return str(meta.get("started_at") or "")
    except (OSError, ValueError):
        return ""


def newest_run(results_dir: str | os.PathLike[str] = "results") -> Path:
    """The most recently started run under ``results_dir`` that holds at least one record file."""
    root = Path(results_dir)
    if not root.is_dir():
        raise DfineBenchError(
            f"no records: {root}/ does not exist — run `dfine-bench run` first, or give a run folder"
        )
    runs = [p for p in root.iterdir() if p.is_dir() and any((p / "records").glob("*.json"))]
    if not runs:
        raise DfineBenchError(
            f"no records under {root}/ — run `dfine-bench run` first, or give a run folder or record file"
        )
    return max(runs, key=lambda p: (_started(p), p.stat().st_mtime, p.name))


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
