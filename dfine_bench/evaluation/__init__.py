"""Evaluation: the label-map check, the inference driver, and the evaluators it streams detections to."""

from dfine_bench.evaluation.engines import ENGINES, CocoResult, run_engine
from dfine_bench.evaluation.evaluator import (
    CompositeEvaluator,
    Evaluator,
    EvaluatorContext,
    EvaluatorResult,
    ImageInput,
)
from dfine_bench.evaluation.labelmap import check_label_map
from dfine_bench.evaluation.loop import evaluate_model, planned_outcomes
from dfine_bench.evaluation.outcome import evaluate_predictions
from dfine_bench.evaluation.predictions import load_results_file, validate_detections
from dfine_bench.evaluation.registry import (
    ENTRY_POINT_GROUP,
    check_evaluators,
    create_evaluator,
    list_evaluators,
    register_evaluator,
    unregister_evaluator,
)

__all__ = [
    "ENGINES",
    "ENTRY_POINT_GROUP",
    "CocoResult",
    "CompositeEvaluator",
    "Evaluator",
    "EvaluatorContext",
    "EvaluatorResult",
    "ImageInput",
    "check_evaluators",
    "check_label_map",
    "create_evaluator",
    "evaluate_model",
    "evaluate_predictions",
    "list_evaluators",
    "load_results_file",
    "planned_outcomes",
    "register_evaluator",
    "run_engine",
    "unregister_evaluator",
    "validate_detections",
]
