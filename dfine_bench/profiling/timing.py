"""Latency measurement: a timing loop with warm-up and stop rules, and its statistics.

``time_callable`` times a zero-argument callable: CUDA events on a GPU (the GPU's own clock,
synchronised after each call so every sample is one call's latency), ``perf_counter_ns`` on
the CPU. It runs ``warmup`` untimed calls, then timed calls until at least ``min_iters`` calls
and (on a GPU) ``min_time_s`` seconds are done, stopping at ``iters`` calls or ``max_time_s``.
On a GPU it follows trtexec's discipline: a warm-up of at least ``warmup_time_s`` (200 ms), a
measurement of at least ``min_time_s`` (3 s) and 10 calls, optionally a CUDA graph and a
spin-wait; what applied is in ``Measurement.extra`` ("n/a" on the CPU). ``Measurement`` keeps
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


def _check_counts(
    warmup: int, iters: int, min_iters: int, max_time_s: float, min_time_s: float, warmup_time_s: float
) -> None:
    """The counts and durations of one timing; ``min_time_s`` is checked by callers that apply it."""
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
    if min_time_s < 0 or min_time_s > max_time_s:
        raise DfineBenchError(
            f"profiling.min_time_s must be between 0 and profiling.max_time_s={max_time_s:g} "
            f"(got {min_time_s})"
        )
    if warmup_time_s < 0:
        raise DfineBenchError(f"profiling.warmup_time_s must be >= 0 (got {warmup_time_s})")


def capture_cuda_graph(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """``fn`` captured once into a CUDA graph; the returned callable replays it.

    Warmed up on a side stream first (lazy initialisation must not be captured). A replay reuses
    the captured call's buffers: it always sees the input the capture saw. Raises whatever the
    capture raised (a runtime that synchronises inside its call, such as ONNX Runtime's, cannot
    be captured)."""
    dev = torch.device(device)
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    synchronize(device)
    return graph.replay


def _discipline(
    cuda: bool, warmup_time_s: float, min_time_s: float, cuda_graph: bool | str, spin_wait: bool
) -> dict[str, Any]:
    """What the GPU timing rules were for this measurement ("n/a" on the CPU)."""
    if not cuda:
        return dict.fromkeys(("warmup_time_s", "min_time_s", "cuda_graph", "spin_wait"), "n/a (cpu)")
    return {
        "warmup_time_s": warmup_time_s,
        "min_time_s": min_time_s,
        "cuda_graph": cuda_graph,
        "spin_wait": spin_wait,
    }


def time_callable(
    fn: Callable[[], Any],
    *,
    warmup: int,
    iters: int,
    min_iters: int,
    max_time_s: float,
    device: str,
    batch_size: int = 1,
    warmup_time_s: float = 0.0,
    min_time_s: float = 0.0,
    cuda_graph: bool = False,
    spin_wait: bool = False,
) -> Measurement:
    """Time ``fn()``: ``warmup`` untimed calls, then timed ones until the stop rule holds.

    The rule (trtexec's on a GPU): at least ``min_iters`` calls *and* at least ``min_time_s`` of
    timed calls; then stop after ``iters`` calls or once ``max_time_s`` has passed. On CUDA the
    warm-up also lasts at least ``warmup_time_s``, each call is bracketed by CUDA events (the
    GPU's own clock) and the end event is waited for before the next call, by spinning on it
    (``spin_wait``) or by a blocking wait; ``cuda_graph`` replays ``fn`` captured into a CUDA graph
    (a capture that fails is recorded in ``extra`` and the calls are timed as they are). On the
    CPU, ``perf_counter_ns``; the GPU rules are recorded as "n/a" and ``cuda_graph``/``spin_wait``
    are refused.
    """
    cuda = _is_cuda(device)
    # the GPU rules do not apply on the CPU, whatever the settings say
    _check_counts(warmup, iters, min_iters, max_time_s, min_time_s if cuda else 0.0, warmup_time_s)
    if not cuda and (cuda_graph or spin_wait):
        which = "profiling.cuda_graph" if cuda_graph else "profiling.spin_wait"
        raise DfineBenchError(f"{which} needs a CUDA device; device={device} is not one")
    graph_state: bool | str = False
    if cuda and cuda_graph:
        fn, graph_state = _with_cuda_graph(fn, device)
    done = _warm_up(fn, device, cuda, warmup, warmup_time_s)
    finished = _stop_rule(min_iters, iters, int(min_time_s * 1e9) if cuda else 0, int(max_time_s * 1e9))
    if cuda:
        samples, timer = _cuda_samples(fn, device, spin_wait, finished), "cuda_event"
    else:
        samples, timer = _cpu_samples(fn, finished), "perf_counter_ns"
    return Measurement(
        samples_ms=samples,
        batch_size=batch_size,
        device=str(device),
        timer=timer,
        warmup=done,
        extra=_discipline(cuda, warmup_time_s, min_time_s, graph_state, spin_wait),
    )


def _with_cuda_graph(fn: Callable[[], Any], device: str) -> tuple[Callable[[], Any], bool | str]:
    """``fn`` captured into a CUDA graph and ``True``; or ``fn`` as it is and why the capture failed."""
    try:
        return capture_cuda_graph(fn, device), True
    except Exception as exc:  # recorded; the calls are timed without a graph
        return fn, f"capture failed, timed without: {type(exc).__name__}: {exc}"[:300]


def _warm_up(fn: Callable[[], Any], device: str, cuda: bool, warmup: int, warmup_time_s: float) -> int:
    """The untimed calls: ``warmup`` of them, and on CUDA for at least ``warmup_time_s``; how many ran."""
    warm_start = time.perf_counter_ns()
    done = 0
    while done < warmup or (cuda and time.perf_counter_ns() - warm_start < warmup_time_s * 1e9):
        fn()
        done += 1
        if cuda and done % 8 == 0:
            synchronize(device)  # the warm-up time is GPU time, not the host's enqueue time
    synchronize(device)
    return done


def _stop_rule(min_iters: int, iters: int, min_ns: int, budget_ns: int) -> Callable[[int, int], bool]:
    """Whether timing stops after ``n`` calls and ``elapsed_ns``: at least ``min_iters`` calls and
    ``min_ns``, then ``iters`` calls or ``budget_ns``, whichever comes first."""

    def finished(n: int, elapsed_ns: int) -> bool:
        if n < min_iters or elapsed_ns < min_ns:
            return False
        return n >= iters or elapsed_ns >= budget_ns

    return finished


def _cuda_samples(
    fn: Callable[[], Any], device: str, spin_wait: bool, finished: Callable[[int, int], bool]
) -> list[float]:
    """Each call's time in ms by CUDA events, its end waited for (spinning or blocking) before the next."""
    samples: list[float] = []
    start_all = time.perf_counter_ns()
    with torch.cuda.device(torch.device(device)):
        while True:
            start = torch.cuda.Event(enable_timing=True, blocking=not spin_wait)
            end = torch.cuda.Event(enable_timing=True, blocking=not spin_wait)
            start.record()
            fn()
            end.record()
            if spin_wait:
                while not end.query():
                    pass
            else:
                end.synchronize()
            samples.append(float(start.elapsed_time(end)))
            if finished(len(samples), time.perf_counter_ns() - start_all):
                return samples


def _cpu_samples(fn: Callable[[], Any], finished: Callable[[int, int], bool]) -> list[float]:
    """Each call's time in ms by ``perf_counter_ns``."""
    samples: list[float] = []
    clock = time.perf_counter_ns
    start_all = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append((t1 - t0) / 1e6)
        if finished(len(samples), t1 - start_all):
            return samples


def _empty() -> None:
    return None


def harness_overhead(device: str) -> Measurement:
    """What the timing loop itself adds per sample, from timing an empty callable on ``device``."""
    return time_callable(_empty, warmup=10, iters=2000, min_iters=200, max_time_s=0.5, device=device)
