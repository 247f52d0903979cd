"""Where records live on disk, and loading any set of them as a pandas DataFrame.

Layout of one run::

    results/<run-id>/
        run.json            # the resolved config, command, status (running/complete/interrupted)
        run.log             # the run's log
        records/<record-id>.json   # one file per record, written atomically
        predictions/        # streamed COCO detections (evaluation resumes from here)
        traces/             # torch.profiler traces for TensorBoard
        .lock               # held while a process writes into the run

Two processes never write into the same run folder: a folder whose lock is held is
never reused, and new run ids carry a random suffix.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from dfine_bench.errors import DfineBenchError
from dfine_bench.records.schema import ResultRecord, SchemaVersionError
from dfine_bench.utils.files import atomic_write_json

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_id(*parts: object) -> str:
    """A file-system-safe id from parts ("latency", "dfine_n", "onnxruntime", "bs1")."""
    return "-".join(_SAFE.sub("_", str(p)) for p in parts if p is not None and str(p) != "")


def new_run_id(suite: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{safe_id(suite)}-{secrets.token_hex(3)}"


class RunStore:
    """One run's folder: records, metadata and the write lock."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.records_dir = self.run_dir / "records"
        self._lock_fd: int | None = None

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    # -- locking: a run folder has one writer --------------------------------------------
    def try_lock(self) -> bool:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def is_locked_by_other(self) -> bool:
        if not (self.run_dir / ".lock").exists():
            return False
        fd = os.open(self.run_dir / ".lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    # -- metadata -------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads((self.run_dir / "run.json").read_text())
        except (OSError, ValueError):
            return {}

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir / "run.json", meta)

    def update_meta(self, **fields: Any) -> None:
        meta = self.read_meta()
        meta.update(fields)
        self.write_meta(meta)

    # -- records --------------------------------------------------------------------------
    def record_path(self, record_id: str) -> Path:
        return self.records_dir / f"{safe_id(record_id)}.json"

    def has_record(self, record_id: str, *, ok_only: bool = True) -> bool:
        path = self.record_path(record_id)
        if not path.exists():
            return False
        try:
            rec = ResultRecord.from_dict(json.loads(path.read_text()))
        except (ValueError, OSError):
            return False
        return rec.status != "failed" if ok_only else True

    def write_record(self, record: ResultRecord) -> Path:
        path = self.record_path(record.record_id)
        atomic_write_json(path, record.to_dict())
        return path

    def records(self) -> list[ResultRecord]:
        return load_records([self.run_dir])


def newest_run(results_dir: str | os.PathLike[str] = "results") -> Path:
    """The most recently started run folder under ``results_dir`` that holds at least one record.

    "Started" is ``run.json``'s ``started_at`` (then the folder's mtime), so a resumed old run does
    not count as new. Every command that defaults to "the newest run" uses this one rule.
    """
    root = Path(results_dir)
    runs = (
        [p for p in root.iterdir() if p.is_dir() and any((p / "records").glob("*.json"))]
        if root.is_dir()
        else []
    )
    if not runs:
        raise DfineBenchError(
            f"no run with records under {root}/: run a suite first (`dfine-bench run`) or name the run"
        )
    return max(
        runs, key=lambda p: (str(RunStore(p).read_meta().get("started_at") or ""), p.stat().st_mtime, p.name)
    )


def _record_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif (p / "records").is_dir():  # a run folder
            files.extend(sorted((p / "records").glob("*.json")))
        elif p.is_dir():  # a results root holding run folders (or any folder of records)
            files.extend(sorted(f for f in p.rglob("records/*.json")))
        else:
            raise FileNotFoundError(f"no result records at {p}: give a run folder, a record file or results/")
    return files


def load_records(paths: Iterable[str | os.PathLike[str]], *, strict: bool = False) -> list[ResultRecord]:
    """Load records from run folders, record files or a results root.

    A corrupt or foreign file is skipped with a warning naming it (``strict=True`` raises).
    """
    out: list[ResultRecord] = []
    for f in _record_files(paths):
        try:
            out.append(ResultRecord.from_dict(json.loads(f.read_text())))
        except SchemaVersionError as exc:
            if strict:
                raise SchemaVersionError(exc.found) from None
            log.warning("skipping %s: %s", f, exc)
        except (ValueError, TypeError, OSError, AttributeError) as exc:
            if strict:
                raise ValueError(f"{f}: not a dfine-bench result record ({exc})") from exc
            log.warning("skipping %s: not a dfine-bench result record (%s)", f, exc)
    return out


def records_to_frame(records: Iterable[ResultRecord], *, long: bool = False) -> pd.DataFrame:
    """Records as a DataFrame.

    Wide (default): one row per record, identifying columns (run, task, model, weights,
    dataset, device, backend, dtype, batch size, ...) plus one column per metric value.
    Long: one row per (record, metric) with ``metric``, ``value`` and ``unit`` columns.
    """
    rows: list[dict[str, Any]] = []
    for r in records:
        base = {
            "run_id": r.run_id,
            "record_id": r.record_id,
            "task": r.task,
            "status": r.status,
            "reason": r.reason,
            "model": r.model.name,
            "family": r.model.family,
            "weights": r.model.weights_source,
            "weights_sha256": r.model.weights_sha256,
            "random_init": r.model.random_init,
            "fdr": r.model.fdr,
            "go_lsd": r.model.go_lsd,
            "dataset": r.dataset.name if r.dataset else None,
            "generated_data": bool(r.dataset and r.dataset.generated),
            "stand_in": r.is_stand_in,
            "device": r.setup.device,
            "device_name": r.setup.device_name,
            "backend": r.setup.backend,
            "dtype": r.setup.dtype,
            "batch_size": r.setup.batch_size,
            "input_size": "x".join(map(str, r.setup.input_size)) if r.setup.input_size else None,
            "protocol": r.setup.protocol,
            "timed": r.setup.timed,
            "schema_version": r.schema_version,
            "created_at": r.created_at,
        }
        if long:
            for name, m in r.metrics.items():
                rows.append({**base, "metric": name, "value": m.value, "unit": m.unit})
        else:
            rows.append({**base, **{name: m.value for name, m in r.metrics.items()}})
    return pd.DataFrame(rows)


def load_frame(paths: Iterable[str | os.PathLike[str]], *, long: bool = False) -> pd.DataFrame:
    """One call from folders on disk to a DataFrame."""
    return records_to_frame(load_records(paths), long=long)
