"""Profiling: params/GFLOPs, latency ``Measurement``, throughput, backends, memory and traces.

The runner calls ``profile_model`` once per model and backend; ``time_callable`` and
``harness_overhead`` are the timing primitives everything else uses.
"""

from dfine_bench.profiling.profile import profile_model
from dfine_bench.profiling.protocols import PAPER_T4, Protocol, deviations_from_paper
from dfine_bench.profiling.timing import Measurement, harness_overhead, time_callable

__all__ = [
    "PAPER_T4",
    "Measurement",
    "Protocol",
    "deviations_from_paper",
    "harness_overhead",
    "profile_model",
    "time_callable",
]
