"""Profiling: params/GFLOPs, latency ``Measurement``, throughput, backends, memory and traces.

The runner calls ``profile_model`` once per model and backend; ``time_callable`` and
``harness_overhead`` are the timing primitives everything else uses. The names below load on
first use, so backend metadata (``list backends``, config checks) needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "profile_model": "dfine_bench.profiling.profile",
    "PAPER_T4": "dfine_bench.profiling.protocols",
    "Protocol": "dfine_bench.profiling.protocols",
    "deviations_from_paper": "dfine_bench.profiling.protocols",
    "Measurement": "dfine_bench.profiling.timing",
    "harness_overhead": "dfine_bench.profiling.timing",
    "time_callable": "dfine_bench.profiling.timing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
