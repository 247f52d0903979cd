"""COCO AP as an evaluator: the 12 standard stats through faster-coco-eval (default) or pycocotools.

The numbers are exactly those of ``engines.run_engine`` over the images the driver processed
(failed images are never processed, so they are left out, as before). With
``evaluation.bootstrap.enabled`` the record also carries AP, AP50 and AP75 confidence intervals
(``details["bootstrap"]``, see ``bootstrap.py``), computed from the same evaluation's matching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.errors import DfineBenchError
from dfine_bench.evaluation.engines import run_engine
from dfine_bench.evaluation.evaluator import EvaluatorContext, EvaluatorResult, ImageInput, Rows
from dfine_bench.evaluation.outcome import add_bootstrap, coco_metrics, result_details
from dfine_bench.evaluation.predictions import rows_to_coco
from dfine_bench.evaluation.registry import register_evaluator


def _engine_key(cfg: EvaluationSettings) -> str:
    return cfg.engine


class CocoEvaluator:
    """COCO box AP (``evaluation.engine``); its record key is the engine's name."""

    name = "coco"
    task = "evaluation"

    def __init__(self, context: EvaluatorContext) -> None:
        self.context = context
        self.engine = context.cfg.engine
        self.key = self.engine
        self.reset()

    def reset(self) -> None:
        self._image_ids: list[int] = []
        self._dets: list[dict[str, Any]] = []

    def process(self, inputs: Sequence[ImageInput], outputs: Sequence[Rows]) -> None:
        for image, rows in zip(inputs, outputs):
            self._image_ids.append(image.image_id)
            self._dets.extend(rows_to_coco(image.image_id, rows))

    def evaluate(self) -> EvaluatorResult:
        if not self._dets:
            raise DfineBenchError(
                f"no detections on any of {len(self._image_ids)} images; nothing to evaluate"
            )
        dataset, cfg = self.context.dataset, self.context.cfg
        # The dicts were built here and are not used again: the engine may have them uncopied.
        boot = cfg.bootstrap
        result = run_engine(
            dataset.annotations,
            self._dets,
            engine=self.engine,
            image_ids=self._image_ids,
            copy_input=False,
            matching=boot.enabled,
        )
        self._dets = []
        metrics, notes = coco_metrics(result)
        details = result_details(result, dataset.category_names())
        notes += add_bootstrap(details, result, boot)
        if not cfg.per_category:
            details.pop("per_category_ap", None)
        if not cfg.pr_curves:
            details.pop("pr_curve", None)
        return EvaluatorResult(metrics=metrics, details=details, setup={"engine": self.engine}, notes=notes)


register_evaluator(
    "coco",
    CocoEvaluator,
    task="evaluation",
    key=_engine_key,
    description="COCO box AP/AR (evaluation.engine: faster_coco_eval or pycocotools)",
)
