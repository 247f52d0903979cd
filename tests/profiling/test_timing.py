"""The timing primitives: Measurement statistics, the timing loop's stop rules, harness overhead."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch

from dfine_bench.errors import DfineBenchError
from dfine_bench.profiling import Measurement, harness_overhead, time_callable
from dfine_bench.records.metrics import METRICS


def test_measurement_statistics_follow_the_samples() -> None:
    rng = np.random.default_rng(3)
    samples = list(rng.gamma(4.0, 2.0, size=101))
    m = Measurement(samples_ms=samples, batch_size=4)
    assert m.n == 101
    assert m.mean == pytest.approx(statistics.fmean(samples))
    assert m.median == pytest.approx(statistics.median(samples))
    assert m.std == pytest.approx(statistics.stdev(samples))
    q = statistics.quantiles(samples, n=100, method="inclusive")
    assert m.p90 == pytest.approx(q[89])
    assert m.p99 == pytest.approx(q[98])
    q4 = statistics.quantiles(samples, n=4, method="inclusive")
    assert m.iqr == pytest.approx(q4[2] - q4[0])
    assert m.cv == pytest.approx(m.std / m.mean)
    assert m.fps == pytest.approx(4 * 1000.0 / m.median)  # images/s from the median and the batch


def test_measurement_metrics_use_the_catalogue_names_and_units() -> None:
    m = Measurement(samples_ms=[2.0, 4.0, 6.0])
    metrics = m.to_metrics()
    expected = {
        "latency_median",
        "latency_mean",
        "latency_p90",
        "latency_p99",
        "latency_median_ci_low",
        "latency_median_ci_high",
        "latency_iqr",
        "latency_std",
        "latency_cv",
        "fps",
    }
    assert set(metrics) == expected
    for name, met in metrics.items():
        assert met.unit == METRICS[name].unit
        assert met.higher_is_better == METRICS[name].higher_is_better
    assert metrics["latency_median"].value == 4.0
    assert metrics["fps"].value == pytest.approx(250.0)


def test_single_sample_has_zero_spread_and_empty_is_refused() -> None:
    m = Measurement(samples_ms=[5.0])
    assert (m.std, m.cv, m.iqr) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        Measurement(samples_ms=[])


def test_time_callable_runs_warmup_then_iters() -> None:
    calls = []
    m = time_callable(lambda: calls.append(1), warmup=3, iters=17, min_iters=5, max_time_s=60, device="cpu")
    assert len(calls) == 3 + 17
    assert m.n == 17 and m.warmup == 3 and m.timer == "perf_counter_ns"


def test_time_callable_stops_at_the_time_budget_but_not_before_min_iters() -> None:
    def slow() -> None:
        time.sleep(0.02)

    t0 = time.perf_counter()
    m = time_callable(slow, warmup=0, iters=1000, min_iters=4, max_time_s=0.05, device="cpu")
    assert 4 <= m.n < 20
    assert time.perf_counter() - t0 < 2.0
    # every sample saw the 20 ms sleep: the clock is right to within the sleep's slack
    assert min(m.samples_ms) >= 19.0
    m = time_callable(slow, warmup=0, iters=1000, min_iters=8, max_time_s=0.001, device="cpu")
    assert m.n == 8


def test_time_callable_measures_what_it_times() -> None:
    m = time_callable(
        lambda: time.sleep(0.005), warmup=1, iters=10, min_iters=10, max_time_s=10, device="cpu"
    )
    assert 4.5 <= m.median <= 30.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warmup": -1, "iters": 5, "min_iters": 1, "max_time_s": 1},
        {"warmup": 0, "iters": 0, "min_iters": 1, "max_time_s": 1},
        {"warmup": 0, "iters": 5, "min_iters": 6, "max_time_s": 1},
        {"warmup": 0, "iters": 5, "min_iters": 1, "max_time_s": 0},
    ],
)
def test_bad_counts_are_clear_errors(kwargs: dict) -> None:
    with pytest.raises(DfineBenchError, match="profiling\\."):
        time_callable(lambda: None, device="cpu", **kwargs)


def test_harness_overhead_is_small_on_cpu() -> None:
    m = harness_overhead("cpu")
    assert m.n >= 200
    assert m.median < 0.05  # an empty call costs well under 50 us even on a loaded machine


@pytest.mark.gpu
def test_cuda_events_time_gpu_work() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: CUDA-event timing needs a GPU")
    a = torch.randn(2048, 2048, device="cuda")
    m = time_callable(lambda: a @ a, warmup=3, iters=20, min_iters=5, max_time_s=5, device="cuda")
    assert m.timer == "cuda_event"
    assert m.median > 0
    empty = harness_overhead("cuda")
    assert empty.median < m.median
