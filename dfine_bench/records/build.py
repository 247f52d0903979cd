"""Building ``ResultRecord``s from task outcomes: the model facts, the setup, the honesty notes.

Used by the run executor and by ``dfine-bench evaluate``; it needs only the record schema (no
torch, no model code): an adapter or a model spec is read through the small protocols below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any, Protocol

from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup, TaskOutcome, build_dataclass
from dfine_bench.records.store import safe_id

_SETUP_FIELDS = frozenset(f.name for f in fields(Setup))
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
    """One outcome as a record: the outcome's setup overrides ``base_setup``; stand-ins are noted.

    ``outcome.setup`` holds ``Setup`` fields only, plus ``extra`` (what Setup has no field for,
    merged into ``setup.extra``); any other key is an error, never silently kept as extra."""
    setup = merge_setup(base_setup, outcome.setup, where=f"{outcome.task}/{model.name}/{outcome.key}")
    notes = list(outcome.notes)
    if model.random_init:
        notes.append(RANDOM_INIT_NOTE)
    if outcome.dataset is not None and outcome.dataset.generated:
        notes.append(GENERATED_DATA_NOTE)
    if outcome.dataset is not None:  # how the images were read (EXIF, 16-bit, sizes): data/images.py
        notes += [str(n) for n in outcome.dataset.extra.get("notes", []) if str(n) not in notes]
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


def merge_setup(base: Setup, overrides: Mapping[str, Any], *, where: str = "a task") -> Setup:
    """``base`` with ``overrides`` applied (``extra`` merged); an unknown key raises ``ValueError``."""
    unknown = sorted(set(overrides) - _SETUP_FIELDS)
    if unknown:
        raise ValueError(
            f"{where}: setup key(s) {', '.join(map(repr, unknown))} are not Setup fields "
            f"({', '.join(sorted(_SETUP_FIELDS))}); put what Setup has no field for under setup['extra']"
        )
    extra = {**base.extra, **dict(overrides.get("extra") or {})}
    fields_ = {k: v for k, v in overrides.items() if k != "extra"}
    fields_["deviations"] = list(fields_.get("deviations", base.deviations))  # never the base's list itself
    return replace(base, **fields_, extra=extra)


def record_id(task: str, model: str, key: str) -> str:
    """The id of the record a task writes for a model under an outcome key."""
    return safe_id(task, model, key)


__all__ = ["make_record", "merge_setup", "model_info", "record_id", "unbuilt_model_info"]
