"""Model adapters: one interface (``DetectorAdapter``), a registry and ``create_model``."""

from dfine_bench.adapters.base import (
    Detections,
    DetectorAdapter,
    ModelSpec,
    PreprocessedBatch,
    Preprocessor,
    RawOutputs,
    WeightsInfo,
)
from dfine_bench.adapters.registry import (
    create_model,
    get_spec,
    list_models,
    register_model,
)

__all__ = [
    "Detections",
    "DetectorAdapter",
    "ModelSpec",
    "PreprocessedBatch",
    "Preprocessor",
    "RawOutputs",
    "WeightsInfo",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
]
