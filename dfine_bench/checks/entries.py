"""What the gate compares: one ``Entry`` per record, and the two sets of them, ``Baseline`` and ``RunData``.

``entries_from_records`` turns a run's records into the form a baseline file holds (metric values to
10 significant digits; latency samples, or past ``MAX_SAMPLES`` samples ``QUANTILES`` quantiles), so
the gate compares like with like. ``check_finite`` refuses an entry value no measurement can have,
and ``noisy_latencies`` finds the latency records of a baseline saved on a busy machine.
``BaselineError`` is the error of every baseline or run that cannot be read or compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfine_bench.checks.fingerprint import record_fingerprint
from dfine_bench.errors import DfineBenchError
from dfine_bench.records.metrics import find_metric
from dfine_bench.records.schema import SCHEMA_VERSION, ResultRecord

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
