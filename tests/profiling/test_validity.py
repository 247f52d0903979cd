"""Measurement validity: CV and CPU contention mark a latency ``unstable``; p99 needs 100 samples;
the median's bootstrap interval."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from profiling_toys import ToyAdapter

from dfine_bench.config.schema import BackendConfig
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.errors import ConfigError
from dfine_bench.profiling import Measurement, profile_model
from dfine_bench.profiling import validity as validity_mod
from dfine_bench.profiling.validity import (
    P99_MIN_SAMPLES,
    Contention,
    ContentionWatch,
    assess,
    bootstrap_median_ci,
)

FAST = ProfileSettings(
    warmup=1,
    iters=8,
    min_iters=5,
    max_time_s=2.0,
    batch_sizes=[1],
    complexity=False,
    throughput=False,
    flops_input_size=[64, 64],
    threads=1,
    cv_warn=100.0,  # only contention can mark these runs
)


def _latency(outcomes: list) -> object:
    return next(o for o in outcomes if o.task == "latency")


def test_injected_load_average_marks_the_run_unstable(
    toy: ToyAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where schedstat is not readable (not Linux), the load average judges contention."""
    monkeypatch.setattr(validity_mod, "run_queue_wait_s", lambda: None)
    monkeypatch.setattr(validity_mod, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))  # 6 runnable tasks on 2 cores
    lat = _latency(profile_model(toy, FAST, BackendConfig(), device="cpu", work_dir=tmp_path, progress=False))
    v = lat.details["validity"]
    assert lat.status == "ok" and v["status"] == "unstable"
    assert v["contention"]["load_before"] == 6.0 and v["contention"]["cores"] == 2
    assert any("CPU contention" in r for r in v["reasons"])
    assert any(n.startswith("latency UNSTABLE") for n in lat.notes)  # the record (and so the report)
    assert "UNSTABLE" in caplog.text  # the console


def _waits(*values: float):  # successive run_queue_wait_s() readings
    it = iter(values)
    return lambda: next(it)


def test_injected_cpu_wait_marks_the_run_unstable(
    toy: ToyAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validity_mod, "run_queue_wait_s", _waits(10.0, 10.0 + 50.0))  # 50 s waited
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    lat = _latency(profile_model(toy, FAST, BackendConfig(), device="cpu", work_dir=tmp_path, progress=False))
    v = lat.details["validity"]
    assert v["status"] == "unstable" and v["contention_judged_by"] == "cpu_wait (schedstat)"
    assert any("waited for a CPU" in r for r in v["reasons"]) and v["contention"]["cpu_wait"] > 1.0


def test_a_load_average_lagging_behind_our_own_work_is_not_contention(
    toy: ToyAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1-minute load average still full of our own export reads as other work; what the timed
    threads waited for a CPU during the window does not (a quiet 2-core machine was marked unstable
    at load 1.27-1.56 per core in every row of benchmarks/stage_table.py)."""
    monkeypatch.setattr(validity_mod, "usable_cores", lambda: 2)
    monkeypatch.setattr(validity_mod, "run_queue_wait_s", _waits(3.0, 3.0))  # no wait in the window
    monkeypatch.setattr(os, "getloadavg", lambda: (3.1, 3.1, 3.1))
    lat = _latency(profile_model(toy, FAST, BackendConfig(), device="cpu", work_dir=tmp_path, progress=False))
    v = lat.details["validity"]
    assert v["status"] == "stable" and v["contention"]["load_per_core"] > 1.25  # recorded, not judged
    assert v["contention"]["cpu_wait"] == 0.0


def test_a_second_busy_process_marks_the_run_unstable(toy: ToyAdapter, tmp_path: Path) -> None:
    """A real loaded machine: two busy processes per core beside the timed thread (one per core would
    leave a many-core machine's scheduler a free core most of the time)."""
    import subprocess
    import sys
    import time

    if validity_mod.run_queue_wait_s() is None:
        pytest.skip("schedstat is not readable here (not Linux)")
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(validity_mod.usable_cores())
    ]
    try:
        time.sleep(0.3)  # let them start spinning
        settings = replace(FAST, iters=1_000_000, min_iters=5, max_time_s=1.0, stages=False)
        lat = _latency(
            profile_model(toy, settings, BackendConfig(), device="cpu", work_dir=tmp_path, progress=False)
        )
    finally:
        for p in busy:
            p.kill()
    v = lat.details["validity"]
    assert v["status"] == "unstable", v
    assert any("waited for a CPU" in r for r in v["reasons"])


def test_a_quiet_machine_is_stable(toy: ToyAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validity_mod, "run_queue_wait_s", lambda: None)  # judged by the load average
    monkeypatch.setattr(validity_mod, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    lat = _latency(profile_model(toy, FAST, BackendConfig(), device="cpu", work_dir=tmp_path, progress=False))
    v = lat.details["validity"]
    assert v["status"] == "stable" and v["reasons"] == []
    assert v["contention"]["load_per_core"] == pytest.approx(0.5)  # our one thread on two cores
    assert not any("UNSTABLE" in n for n in lat.notes)


def test_high_cv_alone_marks_unstable() -> None:
    steady = [10.0, 10.1, 9.9, 10.0, 10.05] * 4
    noisy = [10.0, 30.0, 10.0, 5.0, 40.0] * 4
    assert not assess(steady, None, cv_max=0.1).unstable
    v = assess(noisy, None, cv_max=0.1)
    assert v.unstable and "coefficient of variation" in v.reasons[0]
    assert v.to_dict()["status"] == "unstable" and v.summary().startswith("UNSTABLE")


def test_own_work_is_not_counted_as_contention() -> None:
    # after the timing, the load average includes our own busy core: that is not other work
    c = Contention(cores=2, load_before=0.0, load_after=1.0, busy_cores=1.0, threads=1)
    assert c.other_load == pytest.approx(0.0)
    assert not assess([1.0, 1.0, 1.0], c).unstable
    busy = Contention(cores=2, load_before=0.0, load_after=3.0, busy_cores=1.0, threads=1)
    assert busy.other_load == pytest.approx(2.0) and assess([1.0, 1.0, 1.0], busy).unstable


def test_contention_watch_reads_before_and_after(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = iter([(0.5, 0, 0), (2.5, 0, 0)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(loads))
    with ContentionWatch(threads=2) as w:
        sum(range(10000))
    c = w.contention
    assert (c.load_before, c.load_after, c.threads) == (0.5, 2.5, 2)
    assert 0.0 <= c.busy_cores <= 4.0
    if validity_mod.run_queue_wait_s() is not None:  # Linux: the run-queue wait is read as well
        assert c.cpu_wait is not None and c.cpu_wait >= 0.0


def test_p99_needs_100_samples() -> None:
    few = Measurement(samples_ms=list(np.linspace(1, 2, P99_MIN_SAMPLES - 1)))
    assert few.p99 is None and few.to_metrics()["latency_p99"].value is None
    enough = Measurement(samples_ms=list(np.linspace(1, 2, P99_MIN_SAMPLES)))
    assert enough.p99 == pytest.approx(float(np.percentile(enough.samples_ms, 99)))


def test_bootstrap_interval_brackets_the_median_and_narrows_with_samples() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.gamma(4.0, 2.0, 20), rng.gamma(4.0, 2.0, 2000)
    lo_s, hi_s = bootstrap_median_ci(small)
    lo_l, hi_l = bootstrap_median_ci(large)
    assert lo_s <= np.median(small) <= hi_s and lo_l <= np.median(large) <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3
    assert bootstrap_median_ci(small) == (lo_s, hi_s)  # seeded: the same record gives the same interval
    assert bootstrap_median_ci([3.0]) == (3.0, 3.0)
    m = Measurement(samples_ms=list(small)).to_metrics()
    assert m["latency_median_ci_low"].value == pytest.approx(lo_s)


def test_bad_threshold_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"profiling\.max_load_per_core"):
        replace(FAST, max_load_per_core=0)
