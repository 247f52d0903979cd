"""The result record: one versioned schema for everything a run measures.

A record is one task's outcome (an evaluation, a latency measurement, a parameter
count, ...) for one model under one setup, with full provenance. Records are JSON
files under ``results/<run-id>/records/``; ``dfine_bench.records.store`` reads and
writes them. Bump ``SCHEMA_VERSION`` on any incompatible change: loaders refuse
records of another version with a message rather than misreading them.

Version 2 (this one): ``Setup.deviations`` holds ``Deviation(code, expected, actual)`` objects
(``dfine_bench.records.deviations``) instead of sentences, and a non-finite metric value is kept
as the string ``"nan"`` / ``"inf"`` / ``"-inf"`` instead of ``null`` (a NaN AP is a failure, not
an absent number). Version 1 records are still read: their sentences become deviations with
the code recovered where recognisable (``Deviation("legacy", ...)`` otherwise), and their
``null`` values stay absent (version 1 cannot tell a NaN from a missing value).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dfine_bench.records.deviations import Deviation, read_deviations

SCHEMA_VERSION = 2
#: Older record versions this version reads (upgraded in memory by ``ResultRecord.from_dict``).
READABLE_VERSIONS = (1, 2)
#: How version 2 writes the non-finite floats JSON cannot hold.
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

#: The tasks a run performs; each writes records with this ``task`` value. A component may add
#: its own (an evaluator's ``task``): any name of this form.
TASKS = ("evaluation", "complexity", "latency", "throughput", "trace", "error_analysis")
TASK_NAME = re.compile(r"[a-z][a-z0-9_]*")

#: Record outcome: ``ok``; ``skipped`` (not possible here, with the reason); ``failed`` (an error, kept).
STATUSES = ("ok", "skipped", "failed")


@dataclass
class Metric:
    """One number with its unit. ``higher_is_better`` drives regression checks and Pareto plots."""

    value: float | None
    unit: str
    higher_is_better: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        v: float | str | None = self.value
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)  # JSON has no NaN/inf; "nan" keeps it distinct from an absent value (null)
        return {"value": v, "unit": self.unit, "higher_is_better": self.higher_is_better}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metric:
        v = d.get("value")
        if isinstance(v, str):
            if v not in _NON_FINITE:
                raise ValueError(f"metric value {v!r} is not a number, null, 'nan', 'inf' or '-inf'")
            v = _NON_FINITE[v]
        return cls(value=v, unit=d.get("unit", ""), higher_is_better=d.get("higher_is_better"))

    @property
    def finite(self) -> bool:
        """False for NaN or an infinity (None, an absent value, is neither finite nor not)."""
        return self.value is None or math.isfinite(self.value)


@dataclass
class ModelInfo:
    """What model, with which weights. ``random_init`` marks numbers that are no model's accuracy."""

    name: str
    family: str = ""
    weights_source: str = "random-init"  # random-init | hub | local | official
    weights_id: str | None = None
    weights_sha256: str | None = None
    weights_seed: int | None = None
    random_init: bool = True
    num_classes: int | None = None
    input_size: list[int] | None = None
    fdr: bool = False
    fdr_bins: int | None = None
    go_lsd: bool = False
    num_parameters: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetInfo:
    """Which data. ``generated`` marks the project's synthetic stand-in, never COCO."""

    name: str
    kind: str = "coco"  # coco | generated | predictions-only
    generated: bool = False
    annotations: str | None = None
    annotations_sha256: str | None = None
    images_root: str | None = None
    num_images: int | None = None
    subset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Setup:
    """How it was measured. ``protocol`` names a preset (``paper_t4``) or ``custom``;
    ``deviations`` lists where this differs from the paper's protocol (``Deviation``s; sentences
    given here are read as version-1 sentences)."""

    device: str = "cpu"
    device_name: str | None = None  # e.g. "NVIDIA T4", "Intel Xeon ..." — what really ran
    dtype: str = "fp32"
    backend: str = "eager"
    batch_size: int = 1
    input_size: list[int] | None = None
    threads: int | None = None
    protocol: str = "custom"
    timed: str | None = None  # model | model+postprocess | end-to-end
    detections_per_image: int | None = None
    score_threshold: float | None = None
    engine: str | None = None  # COCO engine
    deviations: list[Deviation] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.deviations = read_deviations(self.deviations)


@dataclass
class ResultRecord:
    run_id: str
    record_id: str
    task: str
    model: ModelInfo
    setup: Setup
    environment: dict[str, Any]
    metrics: dict[str, Metric] = field(default_factory=dict)
    dataset: DatasetInfo | None = None
    status: str = "ok"
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not TASK_NAME.fullmatch(self.task):
            raise ValueError(f"record task {self.task!r} is not a task name (such as {', '.join(TASKS)})")
        if self.status not in STATUSES:
            raise ValueError(f"record status {self.status!r} is not one of {STATUSES}")

    def value(self, metric: str) -> float | None:
        m = self.metrics.get(metric)
        return None if m is None else m.value

    @property
    def is_stand_in(self) -> bool:
        """True when the numbers come from random weights or generated data."""
        return self.model.random_init or bool(self.dataset and self.dataset.generated)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "record_id": self.record_id,
            "task": self.task,
            "status": self.status,
            "reason": self.reason,
            "created_at": self.created_at,
            "model": dataclasses.asdict(self.model),
            "dataset": dataclasses.asdict(self.dataset) if self.dataset else None,
            "setup": {
                **dataclasses.asdict(self.setup),
                "deviations": [d.to_dict() for d in read_deviations(self.setup.deviations)],
            },
            "environment": self.environment,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "notes": list(self.notes),
            "details": self.details,
        }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResultRecord:
        version = d.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise SchemaVersionError(version)
        try:
            return cls(
                run_id=d["run_id"],
                record_id=d["record_id"],
                task=d["task"],
                status=d.get("status", "ok"),
                reason=d.get("reason"),
                created_at=d["created_at"],
                model=build_dataclass(ModelInfo, d["model"]),
                dataset=build_dataclass(DatasetInfo, d["dataset"]) if d.get("dataset") else None,
                setup=build_dataclass(Setup, d["setup"]),
                environment=d.get("environment", {}),
                metrics={k: Metric.from_dict(v) for k, v in d.get("metrics", {}).items()},
                notes=list(d.get("notes", [])),
                details=d.get("details", {}),
                # read into this version's objects (deviations as data): written back as this version
                schema_version=SCHEMA_VERSION,
            )
        except KeyError as exc:
            raise ValueError(f"record is missing the field {exc.args[0]!r}") from None


class SchemaVersionError(ValueError):
    def __init__(self, found: Any) -> None:
        self.found = found
        super().__init__(
            f"record schema version {found!r} is not one this dfine-bench reads "
            f"({', '.join(map(str, READABLE_VERSIONS))}); "
            "re-run with this version of dfine-bench or load it with the version that wrote it"
        )


def build_dataclass(cls: type, data: dict[str, Any]) -> Any:
    """Build a dataclass from a dict; unknown keys go into ``extra`` so nothing is lost."""
    names = {f.name for f in dataclasses.fields(cls)}
    known = {k: v for k, v in data.items() if k in names}
    unknown = {k: v for k, v in data.items() if k not in names}
    obj = cls(**known)
    if unknown:
        obj.extra.update(unknown)
    return obj


@dataclass
class TaskOutcome:
    """What a task (evaluation, profiling step) returns; the runner turns it into a ``ResultRecord``.

    ``key`` makes the record id unique within the run for this model and task (for example
    ``"onnxruntime-fp32-bs1"``); ``setup`` overrides ``Setup`` fields (backend, dtype, batch_size,
    timed, threads, engine, detections_per_image, deviations, ...).
    """

    task: str
    key: str = ""
    metrics: dict[str, Metric] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    dataset: DatasetInfo | None = None
    status: str = "ok"
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
