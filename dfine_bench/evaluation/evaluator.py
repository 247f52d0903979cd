"""The evaluator contract (detectron2-style): ``reset`` / ``process(inputs, outputs)`` / ``evaluate``.

The inference driver (``evaluation.loop``) feeds every configured evaluator the same stream of
per-image detections and knows nothing about what they compute. An evaluator is built by its
registered factory from an ``EvaluatorContext`` and returns an ``EvaluatorResult``; the driver
turns each result into one ``TaskOutcome`` (record) under the evaluator's ``task`` and key.

Detections reach ``process`` as rows ``[x, y, w, h, score, category_id]`` in pixels of the
original image (the adapter's postprocessed output, never thresholded or re-capped).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.records.schema import Metric

log = logging.getLogger(__name__)

#: One image's detections: ``[x, y, w, h, score, category_id]`` rows, original-image pixels.
Rows = list[list[float]]


@dataclass(frozen=True)
class ImageInput:
    """What an evaluator learns about one evaluated image besides its detections."""

    image_id: int


@dataclass(frozen=True)
class EvaluatorContext:
    """What a factory gets to build an evaluator: the dataset (ground truth) and the settings."""

    dataset: ResolvedDataset
    cfg: EvaluationSettings


@dataclass
class EvaluatorResult:
    """One evaluator's answer; ``status``/``reason`` as in records (``failed`` keeps the message)."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    reason: str | None = None


@runtime_checkable
class Evaluator(Protocol):
    """What the driver calls. ``task`` and ``key`` name the record the result is written to."""

    name: str
    task: str
    key: str

    def reset(self) -> None: ...

    def process(self, inputs: Sequence[ImageInput], outputs: Sequence[Rows]) -> None: ...

    def evaluate(self) -> EvaluatorResult: ...


class CompositeEvaluator:
    """Several evaluators behind one: ``process`` reaches each; ``evaluate`` keeps every answer.

    One evaluator raising in ``evaluate`` becomes a failed result for it alone: what the
    others computed is not lost.
    """

    def __init__(self, evaluators: Sequence[Evaluator]) -> None:
        self.evaluators = list(evaluators)

    def reset(self) -> None:
        for ev in self.evaluators:
            ev.reset()

    def process(self, inputs: Sequence[ImageInput], outputs: Sequence[Rows]) -> None:
        for ev in self.evaluators:
            ev.process(inputs, outputs)

    def evaluate(self) -> dict[str, EvaluatorResult]:
        out: dict[str, EvaluatorResult] = {}
        for ev in self.evaluators:
            try:
                out[ev.name] = ev.evaluate()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # kept as a failed record; the other evaluators go on
                log.exception("evaluator %s failed", ev.name)
                out[ev.name] = EvaluatorResult(status="failed", reason=f"{type(exc).__name__}: {exc}")
        return out
