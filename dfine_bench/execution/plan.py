"""The run plan: from checked settings, every unit of work, what it runs and the records it writes.

A unit is one model's evaluation or one model on one backend's profiling. It carries its own
``run`` (adapter -> outcomes) and the base ``Setup`` of its records, so the executor only walks the
plan: per model, ``build`` the adapter, then each unit's ``run``. Its planned records (task and
outcome key) are known before it runs, so a unit that cannot run (a model that does not build, a
task that raises) is written under exactly the record ids a success would have had: ``check``
then reads "ok in the baseline, failed now", never an unknown new record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import torch

from dfine_bench.adapters.registry import get_spec
from dfine_bench.backends import BackendSpec
from dfine_bench.config.settings import RunSettings
from dfine_bench.evaluation.loop import planned_outcomes
from dfine_bench.profiling.complexity import complexity_key
from dfine_bench.profiling.profile import backend_task_keys
from dfine_bench.records.build import record_id
from dfine_bench.records.environment import device_name
from dfine_bench.records.schema import ModelInfo, Setup, TaskOutcome

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter

UnitKind = Literal["evaluation", "profile"]
#: What a unit does with its model's adapter: the outcomes of its planned records.
UnitRun = Callable[["DetectorAdapter"], list[TaskOutcome]]
#: An evaluation task: (adapter) -> outcomes.
Evaluate = Callable[["DetectorAdapter"], list[TaskOutcome]]
#: A profiling task: (adapter, backend, include_complexity) -> outcomes.
Profile = Callable[["DetectorAdapter", BackendSpec, bool], list[TaskOutcome]]


@dataclass(frozen=True)
class PlannedRecord:
    task: str
    key: str


@dataclass(frozen=True)
class Unit:
    """One unit of work: its kind, model, records, what it runs and its records' base setup."""

    kind: UnitKind
    model: str
    records: tuple[PlannedRecord, ...]
    run: UnitRun
    setup: Setup
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
class ModelWork:
    """One model's part of the plan: how to build it, how to describe it, and its units in order.

    ``describe(None)`` gives the model facts of a model that could not be built."""

    name: str
    build: Callable[[], DetectorAdapter]
    describe: Callable[[DetectorAdapter | None], ModelInfo]
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class RunPlan:
    """Every unit of a run, per model in order (evaluation, then each backend)."""

    work: tuple[ModelWork, ...]

    @property
    def models(self) -> list[str]:
        return [w.name for w in self.work]

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(u for w in self.work for u in w.units)

    @classmethod
    def from_settings(
        cls,
        settings: RunSettings,
        *,
        build: Callable[[str], DetectorAdapter],
        describe: Callable[[str, DetectorAdapter | None], ModelInfo],
        evaluate: Evaluate,
        profile: Profile,
    ) -> RunPlan:
        """The plan of ``settings``; the four callables are the tasks each unit runs (the runner's)."""
        work = []
        for model in settings.suite.models:
            units: list[Unit] = []
            if settings.evaluation.enabled:
                setup = base_setup(settings, None)
                units.append(Unit("evaluation", model, evaluation_records(settings), evaluate, setup))
            if settings.profile.enabled:
                for i, backend in enumerate(settings.backends):
                    first = i == 0 and settings.profile.complexity
                    records = profile_records(settings, model, backend, include_complexity=first)
                    run = _profile_run(profile, backend, first)
                    setup = base_setup(settings, backend)
                    units.append(Unit("profile", model, records, run, setup, backend, first))
            work.append(ModelWork(model, partial(build, model), partial(describe, model), tuple(units)))
        return cls(tuple(work))


def _profile_run(profile: Profile, backend: BackendSpec, include_complexity: bool) -> UnitRun:
    return lambda adapter: profile(adapter, backend, include_complexity)


def base_setup(settings: RunSettings, backend: BackendSpec | None) -> Setup:
    """The setup every record of a unit starts from (a task's outcome overrides its own fields)."""
    return Setup(
        device=settings.device,
        device_name=device_name(settings.device),
        dtype=backend.dtype if backend else "fp32",
        backend=backend.name if backend else "eager",
        batch_size=settings.evaluation.batch_size,
        input_size=list(settings.input_size) if settings.input_size else None,
        threads=torch.get_num_threads(),
        protocol=settings.protocol,
    )


def evaluation_records(settings: RunSettings) -> tuple[PlannedRecord, ...]:
    """The records a model's evaluation writes: one per evaluator and evaluation backend, keys from
    the evaluation package's own ``planned_outcomes`` (which checks the names against its registries)."""
    keys = planned_outcomes(settings.evaluation, list(settings.backends))
    return tuple(PlannedRecord(task, key) for task, key in keys)


def profile_records(
    settings: RunSettings, model: str, backend: BackendSpec, *, include_complexity: bool
) -> tuple[PlannedRecord, ...]:
    """The records one backend's profiling writes; keys from profiling's own key functions."""
    prof = settings.profile
    out = []
    if include_complexity:  # keyed by the size profiling counts at: the model's own unless one is set
        native = settings.input_size or get_spec(model).input_size
        out.append(PlannedRecord("complexity", complexity_key(prof.flops_size(native))))
    keys = backend_task_keys(backend.key, latency=prof.latency, throughput=prof.throughput, trace=prof.trace)
    out += [PlannedRecord(task, key) for task, key in keys]
    return tuple(out)


__all__ = [
    "ModelWork",
    "PlannedRecord",
    "RunPlan",
    "Unit",
    "UnitRun",
    "base_setup",
    "evaluation_records",
    "profile_records",
]
