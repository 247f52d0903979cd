"""COCO evaluation: the label-map check, the streaming/resumable/distributed loop and the engines."""

from dfine_bench.evaluation.engines import ENGINES, CocoResult, run_engine
from dfine_bench.evaluation.labelmap import check_label_map
from dfine_bench.evaluation.loop import evaluate_model
from dfine_bench.evaluation.outcome import evaluate_predictions
from dfine_bench.evaluation.predictions import load_results_file, validate_detections

__all__ = [
    "ENGINES",
    "CocoResult",
    "check_label_map",
    "evaluate_model",
    "evaluate_predictions",
    "load_results_file",
    "run_engine",
    "validate_detections",
]
