"""Latency measurement: a timing loop with warm-up and stop rules, and its statistics.

``time_callable`` times a zero-argument callable: CUDA events on a GPU (the GPU's own clock,
synchronised after each call so every sample is one call's latency), ``perf_counter_ns`` on
the CPU. It runs ``warmup`` untimed calls, then at most ``iters`` timed calls, stopping early
once ``max_time_s`` has passed and at least ``min_iters`` samples exist. ``Measurement`` keeps
the raw samples (regression checks need them) and derives the statistics from them, in the
spirit of ``torch.utils.benchmark.Measurement``. p99 needs ``P99_MIN_SAMPLES`` samples (None
below, recorded as "not measured"); the median comes with a bootstrap confidence interval
(``profiling.validity``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dfine_bench.errors import DfineBenchError
from dfine_bench.profiling.validity import CI_LEVEL, P99_MIN_SAMPLES, bootstrap_median_ci
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import Metric


@dataclass
class Measurement:
    """Latency samples of one timed callable (ms per call) and the statistics derived from them.

    ``batch_size`` is the number of images one call processes; ``fps`` is images per second
    from the median (robust to the occasional slow call a mean would absorb).
    """

    samples_ms: list[float]
    batch_size: int = 1
    device: str = "cpu"
    timer: str = "perf_counter_ns"
    warmup: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.samples_ms:
            raise ValueError("a Measurement needs at least one sample")

    @property
    def _a(self) -> np.ndarray:
        return np.asarray(self.samples_ms, dtype=np.float64)

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def mean(self) -> float:
        return float(self._a.mean())

    @property
    def median(self) -> float:
        return float(np.median(self._a))

    @property
    def iqr(self) -> float:
        q75, q25 = np.percentile(self._a, [75, 25])
        return float(q75 - q25)

    @property
    def p90(self) -> float:
        return float(np.percentile(self._a, 90))

    @property
    def p99(self) -> float | None:
        """The 99th percentile, or None with fewer than ``P99_MIN_SAMPLES`` samples (below that it
        is one of the largest few samples, not a percentile)."""
        if self.n < P99_MIN_SAMPLES:
            return None
        return float(np.percentile(self._a, 99))

    @property
    def median_ci(self) -> tuple[float, float]:
        """The median's ``CI_LEVEL`` bootstrap confidence interval (seeded, so reproducible)."""
        return bootstrap_median_ci(self._a)

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); 0 for a single sample."""
        return float(self._a.std(ddof=1)) if self.n > 1 else 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation, std / mean: the noise of the machine as much as of the model."""
        mean = self.mean
        return self.std / mean if mean > 0 else 0.0

    @property
    def fps(self) -> float:
        median = self.median
        return self.batch_size * 1000.0 / median if median > 0 else float("inf")

    def to_metrics(self) -> dict[str, Metric]:
        """The latency metrics under their catalogue names (``records/metrics.py``)."""
        lo, hi = self.median_ci
        return {
            "latency_median": metric("latency_median", self.median),
            "latency_mean": metric("latency_mean", self.mean),
            "latency_p90": metric("latency_p90", self.p90),
            "latency_p99": metric("latency_p99", self.p99),
            "latency_median_ci_low": metric("latency_median_ci_low", lo),
            "latency_median_ci_high": metric("latency_median_ci_high", hi),
            "latency_iqr": metric("latency_iqr", self.iqr),
            "latency_std": metric("latency_std", self.std),
            "latency_cv": metric("latency_cv", self.cv),
            "fps": metric("fps", self.fps),
        }

    def summary(self) -> dict[str, Any]:
        lo, hi = self.median_ci
        return {
            "n": self.n,
            "mean_ms": self.mean,
            "median_ms": self.median,
            f"median_ci{int(CI_LEVEL * 100)}_ms": [lo, hi],
            "iqr_ms": self.iqr,
            "p90_ms": self.p90,
            "p99_ms": self.p99,
            "std_ms": self.std,
            "cv": self.cv,
            "fps": self.fps,
        }

    def __repr__(self) -> str:
        return (
            f"Measurement(n={self.n}, median={self.median:.3f} ms, IQR={self.iqr:.3f} ms, "
            f"mean={self.mean:.3f} ms, cv={self.cv:.3f}, fps={self.fps:.1f}, bs={self.batch_size})"
        )


def _is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work (a no-op on the CPU)."""
    if _is_cuda(device):
        torch.cuda.synchronize(torch.device(device))


def _check_counts(warmup: int, iters: int, min_iters: int, max_time_s: float) -> None:
    if warmup < 0:
        raise DfineBenchError(f"profiling.warmup must be >= 0 (got {warmup})")
    if iters < 1:
        raise DfineBenchError(f"profiling.iters must be >= 1 (got {iters})")
    if min_iters < 1 or min_iters > iters:
        raise DfineBenchError(
            f"profiling.min_iters must be between 1 and profiling.iters={iters} (got {min_iters})"
        )
    if max_time_s <= 0:
        raise DfineBenchError(f"profiling.max_time_s must be > 0 (got {max_time_s})")


def time_callable(
    fn: Callable[[], Any],
    *,
    warmup: int,
    iters: int,
    min_iters: int,
    max_time_s: float,
    device: str,
    batch_size: int = 1,
) -> Measurement:
    """Time ``fn()``: ``warmup`` untimed calls, then up to ``iters`` timed ones.

    Stops early once ``max_time_s`` seconds of timed calls have passed and at least ``min_iters``
    samples exist. On CUDA each call is bracketed by CUDA events and the end event is waited
    for, so a sample is one call's GPU-side latency, not the host's enqueue time.
    """
    _check_counts(warmup, iters, min_iters, max_time_s)
    cuda = _is_cuda(device)
    for _ in range(warmup):
        fn()
    synchronize(device)

    samples: list[float] = []
    budget_ns = int(max_time_s * 1e9)
    start_all = time.perf_counter_ns()
    if cuda:
        with torch.cuda.device(torch.device(device)):
            for i in range(iters):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                samples.append(float(start.elapsed_time(end)))
                if i + 1 >= min_iters and time.perf_counter_ns() - start_all >= budget_ns:
                    break
        timer = "cuda_event"
    else:
        clock = time.perf_counter_ns
        for i in range(iters):
            t0 = clock()
            fn()
            t1 = clock()
            samples.append((t1 - t0) / 1e6)
            if i + 1 >= min_iters and t1 - start_all >= budget_ns:
                break
        timer = "perf_counter_ns"
    return Measurement(
        samples_ms=samples, batch_size=batch_size, device=str(device), timer=timer, warmup=warmup
    )


def _empty() -> None:
    return None


def harness_overhead(device: str) -> Measurement:
    """What the timing loop itself adds per sample, from timing an empty callable on ``device``."""
    return time_callable(_empty, warmup=10, iters=2000, min_iters=200, max_time_s=0.5, device=device)
