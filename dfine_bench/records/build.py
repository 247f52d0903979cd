"""Building ``ResultRecord``s from task outcomes: the model facts, the setup, the honesty notes.

Used by the run executor and by ``dfine-bench evaluate``; it needs only the record schema (no
torch, no model code): an adapter or a model spec is read through the small protocols below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any, Protocol

from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup, TaskOutcome, build_dataclass
from dfine_bench.records.store import safe_id

RANDOM_INIT_NOTE = "random-init weights: these numbers are not the model's accuracy"
GENERATED_DATA_NOTE = "generated stand-in dataset, not COCO: AP here is not comparable with the paper"


class Describes(Protocol):
    """Anything that states its model facts (a ``DetectorAdapter``)."""

    def describe(self) -> dict[str, Any]: ...


class SpecLike(Protocol):
    """The registry facts of a model that could not be built (a ``ModelSpec``)."""

    @property
    def name(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def input_size(self) -> Sequence[int]: ...
    @property
    def fdr(self) -> bool: ...
    @property
    def fdr_bins(self) -> int | None: ...
    @property
    def go_lsd(self) -> bool: ...


def model_info(adapter: Describes) -> ModelInfo:
    """The record's model facts, from a built adapter."""
    info: ModelInfo = build_dataclass(ModelInfo, adapter.describe())
    return info


def unbuilt_model_info(spec: SpecLike, weights: str) -> ModelInfo:
    """The record's model facts when the model could not be built: what the registry says."""
    return ModelInfo(
        name=spec.name,
        family=spec.family,
        weights_source=weights,
        random_init=weights in ("random-init", "auto"),
        num_classes=spec.num_classes,
        input_size=list(spec.input_size),
        fdr=spec.fdr,
        fdr_bins=spec.fdr_bins,
        go_lsd=spec.go_lsd,
    )


def make_record(
    outcome: TaskOutcome,
    *,
    run_id: str,
    model: ModelInfo,
    base_setup: Setup,
    environment: dict[str, Any],
) -> ResultRecord:
    """One outcome as a record: the outcome's setup overrides ``base_setup``; stand-ins are noted."""
    setup_fields = {f.name for f in fields(Setup)}
    setup = replace(base_setup, deviations=list(base_setup.deviations), extra=dict(base_setup.extra))
    for k, v in outcome.setup.items():
        if k in setup_fields and k != "extra":
            setattr(setup, k, v)
        else:
            setup.extra[k] = v
    notes = list(outcome.notes)
    if model.random_init:
        notes.append(RANDOM_INIT_NOTE)
    if outcome.dataset is not None and outcome.dataset.generated:
        notes.append(GENERATED_DATA_NOTE)
    return ResultRecord(
        run_id=run_id,
        record_id=record_id(outcome.task, model.name, outcome.key),
        task=outcome.task,
        model=model,
        setup=setup,
        environment=environment,
        metrics=outcome.metrics,
        dataset=outcome.dataset,
        status=outcome.status,
        reason=outcome.reason,
        notes=notes,
        details=outcome.details,
    )


def record_id(task: str, model: str, key: str) -> str:
    """The id of the record a task writes for a model under an outcome key."""
    return safe_id(task, model, key)


__all__ = ["make_record", "model_info", "record_id", "unbuilt_model_info"]
