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
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dfine_bench import __version__
from dfine_bench.checks.fingerprint import record_fingerprint
from dfine_bench.errors import DfineBenchError
from dfine_bench.records.metrics import find_metric
from dfine_bench.records.packages import VERSION_KEYS
from dfine_bench.records.schema import (
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    STATUSES,
    ResultRecord,
    SchemaVersionError,
)
from dfine_bench.records.store import RunStore, load_records, newest_run
from dfine_bench.utils.files import atomic_write_text

#: The ``format`` field every baseline file carries.
BASELINE_FORMAT = "dfine-bench-baseline"
#: Version of the baseline file layout; bump on any incompatible change.
BASELINE_FORMAT_VERSION = 1
#: The metric whose unit and range a latency record's ``samples_ms`` share.
SAMPLE_METRIC = "latency_median"
#: Latency records with more samples than this store ``QUANTILES`` quantiles instead.
MAX_SAMPLES = 200
QUANTILES = 101

#: Which weights a record measured: the gate refuses to compare two records that differ in any of
#: these (``weights_id`` and ``weights_sha256`` tell two checkpoints of one source apart).
WEIGHTS_KEYS = ("weights_source", "random_init", "weights_seed", "weights_id", "weights_sha256")
#: Which data an evaluation ran on; kept in the baseline and compared by the gate, key by key.
DATASET_KEYS = ("name", "kind", "generated", "num_images", "subset", "annotations_sha256")
_MODEL_KEYS = ("name", "family", *WEIGHTS_KEYS)
_SETUP_KEYS = (
    "device",
    "device_name",
    "backend",
    "dtype",
    "batch_size",
    "input_size",
    "threads",
    "timed",
    "protocol",
    "engine",
)


class BaselineError(DfineBenchError):
    """A baseline or run that cannot be read or compared (``check`` exits 2)."""


@dataclass
class Entry:
    """What the gate needs of one record, from a baseline file or from a run's record."""

    record_id: str
    task: str
    status: str = "ok"
    reason: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    samples_ms: list[float] | None = None
    samples_kind: str | None = None  # "samples" | "quantiles" (of ``samples_n`` samples)
    samples_n: int | None = None
    failed_images: list[Any] = field(default_factory=list)
    # timing records: the environment fingerprint (``checks.fingerprint`` decides what compares)
    fingerprint: dict[str, Any] | None = None
    # evaluation records: details["bootstrap"] (evaluation/bootstrap.py), for paired ΔAP against a run
    bootstrap: dict[str, Any] | None = None

    @property
    def model_name(self) -> str:
        return str(self.model.get("name", "?"))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "task": self.task,
            "status": self.status,
            "reason": self.reason,
            "model": self.model,
            "dataset": self.dataset,
            "setup": self.setup,
            "metrics": {k: _compact(v) for k, v in self.metrics.items()},
        }
        if self.fingerprint is not None:
            d["fingerprint"] = self.fingerprint
        if self.samples_ms is not None:
            d["samples_ms"] = [round(float(s), 4) for s in self.samples_ms]
            d["samples_kind"] = self.samples_kind
            d["samples_n"] = self.samples_n
        if self.bootstrap is not None:  # only this key of a record's details: the rest is not gated
            d["details"] = {"bootstrap": self.bootstrap}
        return d


@dataclass
class Baseline:
    """A loaded baseline: its provenance, its tolerances and one ``Entry`` per record id."""

    entries: dict[str, Entry]
    provenance: dict[str, Any] = field(default_factory=dict)
    tolerances: dict[str, float] = field(default_factory=dict)
    path: Path | None = None
    format_version: int = BASELINE_FORMAT_VERSION
    record_schema_version: int = SCHEMA_VERSION

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "the baseline"


@dataclass
class RunData:
    """A run to check: its folder, ``run.json`` and records as ``Entry``s."""

    run_dir: Path
    meta: dict[str, Any]
    records: list[ResultRecord]
    entries: dict[str, Entry]

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.run_dir.name)

    @property
    def suite_tolerances(self) -> dict[str, float]:
        suite = (self.meta.get("config") or {}).get("suite") or {}
        return dict(suite.get("tolerances") or {})

    @property
    def suite_baseline(self) -> str | None:
        suite = (self.meta.get("config") or {}).get("suite") or {}
        return suite.get("baseline")


# -- records -> entries -----------------------------------------------------------------
def _compact(v: Any) -> float | None:
    """A metric value as a float with 10 significant digits (parameter counts stay exact).

    A NaN or infinity stays what it is: the gate fails it in a run, and a baseline refuses it
    (``check_finite``); turning it into ``None`` would make it look "not measured"."""
    if v is None:
        return None
    f = float(v)
    if not math.isfinite(f):
        return f
    return float(f"{f:.10g}")


def compact_samples(samples: Iterable[float]) -> tuple[list[float], str, int]:
    """The samples themselves, or ``QUANTILES`` evenly spaced quantiles past ``MAX_SAMPLES``.

    Non-finite samples are kept (a NaN among them makes the quantiles NaN): dropping them would
    let a run whose timer returned NaN pass on its remaining samples."""
    arr = np.asarray([float(s) for s in samples], dtype=np.float64)
    if arr.size <= MAX_SAMPLES:
        return arr.tolist(), "samples", int(arr.size)
    q = np.quantile(arr, np.linspace(0.0, 1.0, QUANTILES))
    return q.tolist(), "quantiles", int(arr.size)


def entry_from_record(record: ResultRecord) -> Entry:
    model = {k: getattr(record.model, k) for k in _MODEL_KEYS}
    dataset = None
    if record.dataset is not None:
        dataset = {k: getattr(record.dataset, k) for k in DATASET_KEYS}
    setup = {k: getattr(record.setup, k) for k in _SETUP_KEYS}
    # batch_sizes: a throughput sweep's sizes (batch_size is the best one); graph: the model or the
    # deploy graph of a timing; stability: stable | unstable | throttled (explains, never compared)
    setup.update(
        {k: record.setup.extra[k] for k in ("batch_sizes", "graph", "stability") if k in record.setup.extra}
    )
    entry = Entry(
        record_id=record.record_id,
        task=record.task,
        status=record.status,
        reason=record.reason,
        model=model,
        dataset=dataset,
        setup=setup,
        metrics={name: _compact(m.value) for name, m in record.metrics.items()},
        failed_images=list(record.details.get("failed_images") or []),
        bootstrap=_bootstrap_of(record.details),
    )
    if record.task in ("latency", "throughput"):
        entry.fingerprint = record_fingerprint(record.setup.extra, record.environment)
    samples = record.details.get("samples_ms")
    if record.task == "latency" and isinstance(samples, list) and samples:
        entry.samples_ms, entry.samples_kind, entry.samples_n = compact_samples(samples)
    return entry


def _bootstrap_of(details: Mapping[str, Any]) -> dict[str, Any] | None:
    """``details["bootstrap"]`` when it holds replicate values (what pairing needs), else None."""
    boot = details.get("bootstrap")
    return boot if isinstance(boot, dict) and isinstance(boot.get("values"), dict) else None


def entries_from_records(records: Iterable[ResultRecord]) -> dict[str, Entry]:
    """One ``Entry`` per record id; traces (files, not numbers) are left out."""
    out: dict[str, Entry] = {}
    for r in records:
        if r.task == "trace":
            continue
        out[r.record_id] = entry_from_record(r)
    return out


def check_finite(entries: Mapping[str, Entry], where: str) -> None:
    """Refuse a NaN, infinite or impossible metric value or latency sample in a baseline's entries.

    Impossible: outside the range the metric's catalogue entry declares (``MetricDef.valid`` /
    ``positive``: an AP below 0 or above 100, a time of 0 ms or less); a metric the catalogue does
    not know is checked for finiteness only (the gate refuses it by name)."""
    for rid, e in entries.items():
        for name, value in e.metrics.items():
            if value is not None and not math.isfinite(value):
                raise BaselineError(
                    f"{where}: records[{rid!r}] metric {name!r} is {value}, not a finite number: a baseline "
                    "must hold real measurements; fix the run (re-run the task) and save the baseline again"
                )
            definition = find_metric(name) if value is not None else None
            why = definition.out_of_range(value) if definition is not None and value is not None else None
            if why:
                raise BaselineError(
                    f"{where}: records[{rid!r}] metric {name!r} is {value:g}, which no measurement can be "
                    f"({name} {why}): restore the file from git or re-save the baseline from a real run"
                )
        _check_samples(e, rid, where)


def _check_samples(e: Entry, rid: str, where: str) -> None:
    bad = [s for s in e.samples_ms or [] if not math.isfinite(s)]
    if bad:
        raise BaselineError(
            f"{where}: records[{rid!r}] has {len(bad)} latency sample(s) that are not finite numbers "
            f"({bad[0]}): re-run the latency task and save the baseline again"
        )
    timing = find_metric(SAMPLE_METRIC)
    why = [w for w in (timing.out_of_range(s) for s in e.samples_ms or []) if w] if timing else []
    if why:
        raise BaselineError(
            f"{where}: records[{rid!r}] has {len(why)} latency sample(s) that no timing can be (each "
            f"{why[0]}): restore the file from git or re-save the baseline from a real run"
        )


def noisy_latencies(entries: Mapping[str, Entry], max_spread: float = 1.5) -> dict[str, float]:
    """Latency records whose p90 / median exceeds ``max_spread``: a baseline saved on a busy machine."""
    out: dict[str, float] = {}
    for rid, e in entries.items():
        if e.task != "latency" or not e.samples_ms:
            continue
        arr = np.asarray(e.samples_ms, dtype=np.float64)
        median = float(np.median(arr))
        spread = float(np.percentile(arr, 90)) / median if median > 0 else 0.0
        if spread > max_spread:
            out[rid] = spread
    return out


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


# -- loading ----------------------------------------------------------------------------
def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise BaselineError(f"{where} lacks the field {key!r}: restore the file or re-save the baseline")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BaselineError(
            f"{where}: field {key!r} should be {names}, not {type(value).__name__}: "
            "restore the file or re-save the baseline"
        )
    return value


_RESAVE = "re-save it with `dfine-bench baseline save <run> --out <file>`"


def _check_header(doc: Any, name: str) -> tuple[int, int]:
    """The format and record schema versions of a baseline document, refused unless readable."""
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise BaselineError(
            f'{name} is not a dfine-bench baseline (no "format": "{BASELINE_FORMAT}" field): {_RESAVE}'
        )
    version = doc.get("format_version")
    if version != BASELINE_FORMAT_VERSION:
        raise BaselineError(
            f"{name}: baseline format_version {version!r}, but this dfine-bench reads version "
            f"{BASELINE_FORMAT_VERSION}: {_RESAVE}"
        )
    record_version = doc.get("record_schema_version")
    if record_version not in READABLE_VERSIONS:
        raise BaselineError(
            f"{name}: saved from records of schema version {record_version!r}, but this dfine-bench "
            f"reads schema versions {', '.join(map(str, READABLE_VERSIONS))}; the numbers may mean other "
            f"things: run the suite with this version and {_RESAVE}"
        )
    return version, record_version


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tolerances(doc: Mapping[str, Any], name: str) -> dict[str, float]:
    tolerances = doc.get("tolerances") or {}
    if not isinstance(tolerances, dict) or not all(_is_number(v) for v in tolerances.values()):
        raise BaselineError(f"{name}: field 'tolerances' should map metric names to numbers")
    return {k: float(v) for k, v in tolerances.items()}


def _numbers(raw: Mapping[str, Any], where: str) -> tuple[dict[str, float | None], list[float] | None]:
    """A baseline record's metric values and latency samples, type-checked."""
    metrics = _require(raw, "metrics", dict, where)
    for mname, value in metrics.items():
        if value is not None and not _is_number(value):
            raise BaselineError(f"{where}: metric {mname!r} should be a number or null, not {value!r}")
    samples = raw.get("samples_ms")
    if samples is not None and (not isinstance(samples, list) or not all(_is_number(s) for s in samples)):
        raise BaselineError(f"{where}: field 'samples_ms' should be a list of numbers")
    values = {k: (None if v is None else float(v)) for k, v in metrics.items()}
    return values, [float(s) for s in samples] if samples is not None else None


def _parse_entry(rid: str, raw: Any, name: str) -> Entry:
    """One record of a baseline document, every field type-checked."""
    where = f"{name}: records[{rid!r}]"
    if not isinstance(raw, dict):
        raise BaselineError(f"{where} should be an object: {_RESAVE}")
    metrics, samples = _numbers(raw, where)
    dataset = raw.get("dataset")
    if dataset is not None and not isinstance(dataset, dict):
        raise BaselineError(f"{where}: field 'dataset' should be an object or null")
    status = _require(raw, "status", str, where)
    if status not in STATUSES:
        raise BaselineError(
            f"{where}: status {status!r} is not one of {', '.join(STATUSES)}: a record that is neither "
            f"cannot be gated; {_RESAVE}"
        )
    return Entry(
        record_id=rid,
        task=_require(raw, "task", str, where),
        status=status,
        reason=raw.get("reason"),
        model=_require(raw, "model", dict, where),
        dataset=dataset,
        setup=_require(raw, "setup", dict, where),
        metrics=metrics,
        samples_ms=samples,
        samples_kind=raw.get("samples_kind"),
        samples_n=raw.get("samples_n"),
        fingerprint=raw["fingerprint"] if isinstance(raw.get("fingerprint"), dict) else None,
        bootstrap=_parse_bootstrap(raw, where),
    )


def _parse_bootstrap(raw: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """A baseline record's ``details.bootstrap``; a baseline saved before it was kept has none."""
    details = raw.get("details")
    if details is None:
        return None
    if not isinstance(details, dict):
        raise BaselineError(f"{where}: field 'details' should be an object: restore the file or {_RESAVE}")
    boot = details.get("bootstrap")
    if boot is not None and not (isinstance(boot, dict) and isinstance(boot.get("values"), dict)):
        raise BaselineError(
            f"{where}: field 'details.bootstrap' should be an object with 'values': "
            f"restore the file or {_RESAVE}"
        )
    return boot


def parse_baseline(doc: Any, path: Path | None = None) -> Baseline:
    """Validate a baseline document (see ``load_baseline``)."""
    name = str(path) if path else "baseline"
    version, record_version = _check_header(doc, name)
    provenance = _require(doc, "provenance", dict, name)
    tolerances = _tolerances(doc, name)
    raw_records = _require(doc, "records", dict, name)
    if not raw_records:
        raise BaselineError(f"{name}: field 'records' is empty: {_RESAVE}")
    entries = {rid: _parse_entry(rid, raw, name) for rid, raw in raw_records.items()}
    check_finite(entries, name)
    return Baseline(
        entries=entries,
        provenance=provenance,
        tolerances=tolerances,
        path=path,
        format_version=version,
        record_schema_version=record_version,
    )


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file; any problem is a ``BaselineError`` naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(
            f"baseline file {path} not found: create it with `dfine-bench baseline save <run> --out {path}`"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BaselineError(
            f"{path} is not a text file: restore it from git or re-save the baseline"
        ) from None
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
            "restore it from git or re-save the baseline"
        ) from None
    return parse_baseline(doc, path)
