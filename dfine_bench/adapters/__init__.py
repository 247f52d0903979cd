"""Model adapters: one interface (``DetectorAdapter``), a registry and ``create_model``.

Names are resolved on first use (PEP 562), so importing this package, the registry or a spec
does not import torch; only the adapter interface (``base``) and the family modules do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dfine_bench.adapters.base import (
        Detections,
        DetectorAdapter,
        PreprocessedBatch,
        Preprocessor,
        RawOutputs,
        WeightsInfo,
    )
    from dfine_bench.adapters.registry import create_model, get_spec, list_models, register_model
    from dfine_bench.adapters.spec import ModelSpec

_WHERE = {
    "Detections": "base",
    "DetectorAdapter": "base",
    "PreprocessedBatch": "base",
    "Preprocessor": "base",
    "RawOutputs": "base",
    "WeightsInfo": "base",
    "ModelSpec": "spec",
    "create_model": "registry",
    "get_spec": "registry",
    "list_models": "registry",
    "register_model": "registry",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # resolved once
    return value
