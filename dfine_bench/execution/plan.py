"""The run plan: from checked settings, every unit of work and the records each one will write.

A unit is one model's evaluation or one model on one backend's profiling. Its planned records
(task and outcome key) are known before it runs, so a unit that cannot run (a model that does
not build, a task that raises) is written under exactly the record ids a success would have had:
``check`` then reads "ok in the baseline, failed now", never an unknown new record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dfine_bench.config.settings import RunSettings
from dfine_bench.records.build import record_id
from dfine_bench.records.schema import TaskOutcome

if TYPE_CHECKING:
    from dfine_bench.profiling.backends import BackendSpec

UnitKind = Literal["evaluation", "profile"]


@dataclass(frozen=True)
class PlannedRecord:
    task: str
    key: str


@dataclass(frozen=True)
class Unit:
    """One unit of work: its kind, model, backend (profiling) and the records it writes."""

    kind: UnitKind
    model: str
    records: tuple[PlannedRecord, ...]
    backend: BackendSpec | None = None
    include_complexity: bool = False  # params/GFLOPs are counted once per model, with its first backend

    @property
    def id(self) -> str:
        """``evaluation/<model>`` or ``profile/<model>/<backend>-<dtype>`` (run.json's completed units)."""
        if self.backend is None:
            return f"{self.kind}/{self.model}"
        return f"{self.kind}/{self.model}/{self.backend.key}"

    def record_ids(self) -> list[str]:
        return [record_id(r.task, self.model, r.key) for r in self.records]

    def not_run(self, status: str, reason: str) -> list[TaskOutcome]:
        """Outcomes for a unit that did not run: its planned records, with ``status`` and ``reason``."""
        return [TaskOutcome(task=r.task, key=r.key, status=status, reason=reason) for r in self.records]


@dataclass(frozen=True)
class RunPlan:
    """Every unit of a run, in order (per model: evaluation, then each backend)."""

    units: tuple[Unit, ...]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(u.model for u in self.units))

    def for_model(self, model: str) -> list[Unit]:
        return [u for u in self.units if u.model == model]

    def unit(self, unit_id: str) -> Unit:
        return next(u for u in self.units if u.id == unit_id)

    @classmethod
    def from_settings(cls, settings: RunSettings) -> RunPlan:
        units: list[Unit] = []
        for model in settings.suite.models:
            if settings.evaluation.enabled:
                units.append(Unit("evaluation", model, evaluation_records(settings)))
            if settings.profile.enabled:
                for i, backend in enumerate(settings.backends):
                    first = i == 0 and settings.profile.complexity
                    records = profile_records(settings, backend, include_complexity=first)
                    units.append(Unit("profile", model, records, backend=backend, include_complexity=first))
        return cls(tuple(units))


def evaluation_records(settings: RunSettings) -> tuple[PlannedRecord, ...]:
    """The records a model's evaluation writes: one per evaluator and evaluation backend, keys from
    the evaluation package's own ``planned_outcomes`` (which checks the names against its registries)."""
    from dfine_bench.evaluation.loop import planned_outcomes

    keys = planned_outcomes(settings.evaluation.config, list(settings.backends))
    return tuple(PlannedRecord(task, key) for task, key in keys)


def profile_records(
    settings: RunSettings, backend: BackendSpec, *, include_complexity: bool
) -> tuple[PlannedRecord, ...]:
    """The records one backend's profiling writes; keys from profiling's own key functions."""
    from dfine_bench.profiling.complexity import complexity_key
    from dfine_bench.profiling.profile import backend_task_keys

    prof = settings.profile
    out = [PlannedRecord("complexity", complexity_key(prof.flops_input_size))] if include_complexity else []
    keys = backend_task_keys(backend.key, latency=prof.latency, throughput=prof.throughput, trace=prof.trace)
    out += [PlannedRecord(task, key) for task, key in keys]
    return tuple(out)


__all__ = ["PlannedRecord", "RunPlan", "Unit", "evaluation_records", "profile_records"]
