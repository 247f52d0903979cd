"""Baselines for regression checks: a compact, versioned JSON summary of one run, meant for git.

A baseline keeps, per record of the run it was saved from, what the gate compares and what
decides whether two records are comparable at all: the task and status, the model's weights
(source, seed, checkpoint id and sha256: ``WEIGHTS_KEYS``), the dataset's identity
(``DATASET_KEYS``), the setup (device, device name, backend, dtype, batch size, input size,
threads, timed part, protocol), every metric value, and for latency records the timing samples
(rounded to 0.1 µs; past ``MAX_SAMPLES`` samples, ``QUANTILES`` evenly spaced quantiles stand
in for them), and for evaluation records ``details["bootstrap"]`` (the AP bootstrap: settings, image
set and weights fingerprints, replicate values), so that the gate can pair a run with its baseline
(``checks.paired_view``); baselines saved before it was kept load with none. Around that it
stores its provenance: the run id, suite, config hash and tolerances, the git revision, the
device and the package versions.

``entries_from_records`` turns a run's records into the same ``Entry`` form, so the gate
(``dfine_bench.checks.gate``) compares like with like. ``load_baseline`` refuses anything it
cannot vouch for (a corrupt file, another format or record schema version) with a
``BaselineError`` naming the file, the field and the fix.

A baseline holds finite numbers only: ``save_baseline`` and ``load_baseline`` refuse a NaN or an
infinite metric or latency sample (``check_finite``), naming the record and the metric, because a
NaN in a baseline would make every comparison with it false and so switch the gate off.
Baselines saved from records of schema version 1 still load (their entries hold no deviations,
the one thing version 2 changed).

This module reads the run a baseline is saved from (``load_run``) and writes the file
(``save_baseline``); ``Entry``, ``Baseline``, ``RunData`` and the records-to-entries conversion are
``checks.entries``, reading a file back is ``checks.baseline_parse``. Both are re-exported here,
the import path callers use.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dfine_bench import __version__
from dfine_bench.checks.baseline_parse import load_baseline, parse_baseline
from dfine_bench.checks.entries import (
    BASELINE_FORMAT,
    BASELINE_FORMAT_VERSION,
    DATASET_KEYS,
    MAX_SAMPLES,
    QUANTILES,
    SAMPLE_METRIC,
    WEIGHTS_KEYS,
    Baseline,
    BaselineError,
    Entry,
    RunData,
    check_finite,
    compact_samples,
    entries_from_records,
    entry_from_record,
    noisy_latencies,
)
from dfine_bench.records.packages import VERSION_KEYS
from dfine_bench.records.schema import READABLE_VERSIONS, SCHEMA_VERSION, SchemaVersionError
from dfine_bench.records.store import RunStore, load_records, newest_run
from dfine_bench.utils.files import atomic_write_text


# -- runs -------------------------------------------------------------------------------
def load_run(run: str | os.PathLike[str] | None, results_dir: str | os.PathLike[str] = "results") -> RunData:
    """Read a run folder strictly: a bad record is an error.

    Without ``run``, the newest run under ``results_dir`` by the rule every command shares
    (``dfine_bench.records.store.newest_run``; it raises ``DfineBenchError``, exit 2, when there is none).
    """
    run_dir = Path(run) if run is not None else newest_run(results_dir)
    if not run_dir.is_dir():
        raise BaselineError(f"run folder {run_dir} does not exist: give a folder under results/")
    if not (run_dir / "records").is_dir():
        raise BaselineError(f"{run_dir} is not a run folder (it has no records/ folder)")
    try:
        records = load_records([run_dir], strict=True)
    except SchemaVersionError as exc:
        raise BaselineError(
            f"{run_dir} holds records of schema version {exc.found!r}; this dfine-bench reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}: re-run the suite with this version"
        ) from None
    except ValueError as exc:
        raise BaselineError(f"{run_dir}: {exc}") from None
    if not records:
        raise BaselineError(f"{run_dir}/records holds no result records: the run wrote nothing to check")
    meta = RunStore(run_dir).read_meta()
    return RunData(run_dir=run_dir, meta=meta, records=records, entries=entries_from_records(records))


# -- saving -----------------------------------------------------------------------------
def build_baseline(run: RunData) -> dict[str, Any]:
    """The baseline document for a run (see the module docstring); a non-finite number is an error."""
    check_finite(run.entries, f"run {run.run_dir}")
    env = run.records[0].environment if run.records else {}
    devices = sorted({str(e.setup.get("device_name")) for e in run.entries.values() if e.setup})
    provenance = {
        "run_id": run.run_id,
        "suite": run.meta.get("suite"),
        "config_hash": run.meta.get("config_hash"),
        "run_status": run.meta.get("status"),
        "run_started_at": run.meta.get("started_at"),
        "command": run.meta.get("command"),
        "git_revision": env.get("git_revision"),
        "git_dirty": env.get("git_dirty"),
        "device": run.records[0].setup.device if run.records else None,
        "device_name": devices[0] if len(devices) == 1 else devices,
        "cpu_count": env.get("cpu_count"),
        "torch_threads": env.get("torch_threads"),
        # every recorded package version (records/packages.py): they explain a changed latency
        "versions": {k: env.get(k) for k in VERSION_KEYS},
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "saved_by": f"dfine-bench {__version__}",
    }
    return {
        "format": BASELINE_FORMAT,
        "format_version": BASELINE_FORMAT_VERSION,
        "record_schema_version": SCHEMA_VERSION,
        "provenance": provenance,
        "tolerances": run.suite_tolerances,
        "records": {rid: run.entries[rid].to_dict() for rid in sorted(run.entries)},
    }


def check_baseline_target(out: str | os.PathLike[str], option: str = "--out") -> Path:
    """``out`` if a baseline may be written there: a new file, or a baseline (it is updated).

    A folder, a symbolic link to nothing, or a file that is not a baseline is a ``BaselineError``
    naming it: nothing the user wrote is overwritten."""
    path = Path(out)
    if path.is_dir():
        raise BaselineError(
            f"{option} {path} is a folder: give a file name, e.g. {option} {path / 'baseline.json'}"
        )
    if path.is_symlink() and not path.exists():
        raise BaselineError(
            f"{option} {path} is a symbolic link to nothing: remove it or choose another file"
        )
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
            raise BaselineError(
                f"{option} {path} exists and is not a dfine-bench baseline: it is not overwritten; "
                "choose another file name (or move that file away yourself)"
            )
    return path


def save_baseline(run: RunData, out: str | os.PathLike[str]) -> Path:
    """Write the baseline of ``run`` to ``out`` atomically (one small, diff-friendly JSON file);
    only a new file or an existing baseline is written (``check_baseline_target``)."""
    path = check_baseline_target(out)
    atomic_write_text(path, dump_baseline(build_baseline(run)))
    return path


def dump_baseline(doc: dict[str, Any]) -> str:
    """JSON with one line per record: small, and a re-saved baseline diffs record by record."""
    head = {k: v for k, v in doc.items() if k != "records"}
    text = json.dumps(head, indent=1, allow_nan=False)[:-2]  # drop the closing "\n}"
    lines = [
        f"  {json.dumps(rid)}: {json.dumps(rec, allow_nan=False, separators=(',', ':'))}"
        for rid, rec in doc.get("records", {}).items()
    ]
    return text + ',\n "records": {\n' + ",\n".join(lines) + "\n }\n}\n"


__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_FORMAT_VERSION",
    "DATASET_KEYS",
    "MAX_SAMPLES",
    "QUANTILES",
    "SAMPLE_METRIC",
    "WEIGHTS_KEYS",
    "Baseline",
    "BaselineError",
    "Entry",
    "RunData",
    "build_baseline",
    "check_baseline_target",
    "check_finite",
    "compact_samples",
    "dump_baseline",
    "entries_from_records",
    "entry_from_record",
    "load_baseline",
    "load_run",
    "noisy_latencies",
    "parse_baseline",
    "save_baseline",
]
