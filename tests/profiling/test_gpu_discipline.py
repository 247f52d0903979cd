"""The GPU timing discipline: what a CPU run records ("n/a"), the refusals at start-up, NVML's
throttle reasons marking a run throttled, and (on a GPU) trtexec's minimum duration and CUDA graphs."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from profiling_toys import ToyAdapter

from dfine_bench.config.loading import compose_config, load_settings
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.errors import ConfigError, DfineBenchError
from dfine_bench.profiling import profile_model, time_callable
from dfine_bench.profiling.gpu_state import GpuWatch, reason_names
from dfine_bench.profiling.latency import tf32
from dfine_bench.profiling.validity import assess


class FakeNvml:
    """The part of ``pynvml`` ``GpuWatch`` reads, with throttle reasons that change between readings."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, reasons: list[int]) -> None:
        self.reasons = list(reasons)
        self.handles: list[Any] = []
        self.shut = False

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self.handles.append(index)
        return SimpleNamespace(index=index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Any:
        self.handles.append(uuid)
        return SimpleNamespace(index=uuid)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return self.reasons.pop(0)

    def nvmlDeviceGetClockInfo(self, handle: Any, kind: int) -> int:
        return 1410 if kind == self.NVML_CLOCK_SM else 1593

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, kind: int) -> int:
        return 1980

    def nvmlDeviceGetTemperature(self, handle: Any, kind: int) -> int:
        return 71

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return 245_000  # mW


def test_reason_bits_are_named() -> None:
    assert reason_names(0) == []
    assert reason_names(0x1 | 0x20) == ["gpu_idle", "sw_thermal_slowdown"]
    assert reason_names(0x4 | 0x1000) == ["sw_power_cap", "bit_0x1000"]


def test_a_slowdown_during_the_window_marks_the_run_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml = FakeNvml([0x0, 0x20])  # quiet before, a software thermal slowdown after
    with GpuWatch("cuda:1", nvml=nvml) as watch:
        pass
    assert nvml.handles == [1] and nvml.shut
    state = watch.state
    assert state["status"] == "ok" and state["throttled"] is True
    assert state["before"]["throttle_reasons"] == [] and state["after"]["throttle_reasons"] == [
        "sw_thermal_slowdown"
    ]
    assert state["after"]["power_w"] == pytest.approx(245.0) and state["after"]["temperature_c"] == 71
    assert watch.slowdown == ["sw_thermal_slowdown"]

    validity = assess([1.0, 1.01, 0.99, 1.0], None, gpu_slowdown=watch.slowdown)
    assert validity.status == "throttled" and validity.unstable
    assert validity.to_dict()["throttled"] is True
    assert any("GPU throttled: sw_thermal_slowdown" in r for r in validity.reasons)


def test_idle_and_application_clock_reasons_are_no_slowdown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,GPU-bbbb")  # torch's cuda:1 is NVML's GPU-bbbb
    nvml = FakeNvml([0x1 | 0x2, 0x1])
    with GpuWatch("cuda:1", nvml=nvml) as watch:
        pass
    assert nvml.handles == ["GPU-bbbb"]
    assert watch.state["throttled"] is False and watch.slowdown == []
    assert assess([1.0, 1.0, 1.0], None, gpu_slowdown=watch.slowdown).status == "stable"


def test_without_nvml_the_state_is_not_measured_and_on_the_cpu_not_applicable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dfine_bench.profiling.gpu_state as gpu_state

    def missing() -> Any:
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(gpu_state, "_load_nvml", missing)
    with GpuWatch("cuda") as watch:
        pass
    assert watch.state["status"] == "not measured" and "nvidia-ml-py" in watch.state["reason"]
    with GpuWatch("cpu") as cpu:
        pass
    assert cpu.state == {"status": "n/a (cpu)"} and cpu.slowdown == []


def test_cpu_timings_record_the_gpu_rules_as_not_applicable() -> None:
    m = time_callable(lambda: None, warmup=2, iters=5, min_iters=5, max_time_s=1, device="cpu", min_time_s=30)
    assert m.n == 5  # the 30 s minimum is a GPU rule: not applied on the CPU
    assert m.extra == {k: "n/a (cpu)" for k in ("warmup_time_s", "min_time_s", "cuda_graph", "spin_wait")}
    for flag in ("cuda_graph", "spin_wait"):
        with pytest.raises(DfineBenchError, match=f"profiling.{flag} needs a CUDA device"):
            time_callable(
                lambda: None, warmup=0, iters=1, min_iters=1, max_time_s=1, device="cpu", **{flag: True}
            )
    with tf32("cpu", True) as state:
        assert state == "n/a (cpu)"


def test_a_cpu_profile_records_its_timing_discipline(tmp_path: Path) -> None:
    settings = ProfileSettings(
        warmup=1, iters=5, min_iters=3, max_time_s=2.0, complexity=False, throughput=False, stages=False
    )
    (lat,) = profile_model(ToyAdapter(), settings, "eager", device="cpu", work_dir=tmp_path, progress=False)
    disc = lat.details["timing_discipline"]
    assert disc["min_iters"] == 3 and disc["iters"] == 5
    assert disc["cuda_graph"] == disc["spin_wait"] == disc["tf32"] == "n/a (cpu)"
    assert disc["gpu_state"] == {"status": "n/a (cpu)"}
    assert lat.setup["extra"]["stability"] in ("stable", "unstable")


@pytest.mark.parametrize("flag", ["cuda_graph", "spin_wait"])
def test_gpu_only_timing_options_are_refused_on_the_cpu_at_start_up(flag: str) -> None:
    overrides = ["model=dfine_n", "device=cpu", f"profiling.{flag}=true"]
    with pytest.raises(ConfigError) as info:
        load_settings(compose_config(overrides), overrides)
    text = str(info.value)
    assert text.startswith(f"profiling.{flag}=true needs a CUDA device") and "\n" not in text


def test_tf32_takes_true_false_or_null() -> None:
    assert ProfileSettings(tf32=None).tf32 is None and ProfileSettings(tf32=False).tf32 is False
    with pytest.raises(ConfigError, match=r"profiling\.tf32=.yes.: must be true, false or null"):
        ProfileSettings(tf32="yes")  # type: ignore[arg-type]


@pytest.mark.gpu
def test_trtexec_rules_and_cuda_graphs_on_a_gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the GPU timing rules need a GPU")
    a = torch.randn(256, 256, device="cuda")
    start = time.perf_counter()
    m = time_callable(
        lambda: a @ a,
        warmup=2,
        iters=10,
        min_iters=10,
        max_time_s=5,
        device="cuda",
        min_time_s=0.3,
        warmup_time_s=0.05,
    )
    assert time.perf_counter() - start >= 0.3 and m.n > 10  # the minimum duration outlasts `iters`
    assert m.extra["min_time_s"] == 0.3 and m.extra["cuda_graph"] is False
    graphed = time_callable(
        lambda: a @ a,
        warmup=2,
        iters=20,
        min_iters=5,
        max_time_s=5,
        device="cuda",
        cuda_graph=True,
        spin_wait=True,
    )
    assert graphed.extra["cuda_graph"] is True and graphed.extra["spin_wait"] is True
    with tf32("cuda", False) as state:
        assert state is False and not torch.backends.cuda.matmul.allow_tf32
    settings = replace(ProfileSettings(), tf32=True)
    assert settings.tf32 is True
