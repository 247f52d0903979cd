"""profile_model end to end on the toy adapter: outcomes, records fields, skips, failures, traces."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from profiling_toys import ToyAdapter, ToyDetNet

from dfine_bench.backends import BackendRunner
from dfine_bench.config.schema import BackendConfig, ProfilingConfig, Timed
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.errors import DfineBenchError
from dfine_bench.profiling import profile as profile_mod
from dfine_bench.profiling import profile_model
from dfine_bench.profiling.throughput import BatchResult, is_oom, run_sweep, sweep_sizes
from dfine_bench.records.environment import device_name

FAST = ProfileSettings(
    warmup=2,
    iters=12,
    min_iters=5,
    max_time_s=2.0,
    batch_sizes=[1, 2],
    throughput_iters=3,
    flops_input_size=[64, 64],
    threads=1,
)


def _by_task(outcomes: list) -> dict:
    return {o.task: o for o in outcomes}


def test_eager_outcomes_carry_statistics_samples_and_setup(toy: ToyAdapter, tmp_path: Path) -> None:
    outs = profile_model(toy, FAST, BackendConfig(), device="cpu", work_dir=tmp_path, progress=False)
    by = _by_task(outs)
    assert set(by) == {"complexity", "latency", "throughput"}
    lat = by["latency"]
    assert lat.status == "ok" and lat.key == "eager-fp32-bs1"
    samples = lat.details["samples_ms"]
    assert 5 <= len(samples) <= 12
    assert lat.metrics["latency_median"].value == pytest.approx(float(np.median(samples)))
    assert lat.metrics["fps"].value == pytest.approx(1000.0 / float(np.median(samples)))
    assert lat.metrics["harness_overhead"].value < lat.metrics["latency_median"].value
    assert lat.metrics["peak_rss"].value > 10
    assert lat.metrics["output_max_abs_diff"].value == 0.0
    s = lat.setup
    assert (s["backend"], s["dtype"], s["batch_size"], s["timed"], s["threads"]) == (
        "eager",
        "fp32",
        1,
        "model",
        1,
    )
    assert s["device_name"] == device_name("cpu")
    assert f"ran on {device_name('cpu')}, not an NVIDIA T4" in s["deviations"]
    assert "fixed random input, not COCO images" in s["deviations"]
    thr = by["throughput"]
    rows = thr.details["by_batch_size"]
    assert [r["batch_size"] for r in rows] == [1, 2]
    assert all(r["status"] == "ok" and r["throughput"] > 0 for r in rows)
    assert thr.metrics["throughput"].value == max(r["throughput"] for r in rows)
    assert thr.metrics["max_batch_size"].value == 2
    assert torch.get_num_threads() == 1  # restored


def test_onnxruntime_is_checked_against_eager_then_timed(toy: ToyAdapter, tmp_path: Path) -> None:
    outs = profile_model(
        toy,
        FAST,
        BackendConfig(name="onnxruntime"),
        device="cpu",
        work_dir=tmp_path,
        include_complexity=False,
    )
    by = _by_task(outs)
    assert set(by) == {"latency", "throughput"}
    lat = by["latency"]
    assert lat.status == "ok", lat.reason
    assert lat.key == "onnxruntime-fp32-bs1"
    assert 0.0 <= lat.metrics["output_max_abs_diff"].value < 1e-4
    assert lat.details["backend_info"]["providers"] == ["CPUExecutionProvider"]
    assert Path(lat.details["backend_info"]["onnx_file"]).is_file()
    assert "onnxruntime fp32, not TensorRT FP16" in lat.setup["deviations"]


def test_dictconfig_and_enum_strings_are_accepted(toy: ToyAdapter, tmp_path: Path) -> None:
    """A DictConfig with enum members becomes plain typed settings once, before profile_model."""
    fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(FAST).items() if k != "seed"}
    raw = OmegaConf.structured(
        ProfilingConfig(**{**fields, "throughput": False, "timed": Timed.model_postprocess})
    )
    cfg = ProfileSettings.from_config(raw)
    assert cfg.timed == "model+postprocess" and type(cfg.timed) is str
    backend = OmegaConf.create({"name": "eager", "dtype": "fp32", "atol": 0.01})
    outs = profile_model(toy, cfg, backend, device="cpu", work_dir=tmp_path, protocol="custom")
    lat = _by_task(outs)["latency"]
    assert lat.setup["timed"] == "model+postprocess"
    # the toy has its own postprocessor, so no deploy graph: the postprocessor runs in Python after
    # the backend, which the record says (the paper's engine holds it)
    assert lat.setup["extra"]["graph"] == "model"  # Setup has no field for it: its extra
    assert any(
        d.code == "timed" and "in Python after the backend" in d.actual for d in lat.setup["deviations"]
    )


def test_dataset_images_end_to_end(toy: ToyAdapter, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48 + 8 * i, 80, 3), dtype=np.uint8) for i in range(3)]
    cfg = replace(FAST, timed="end-to-end", complexity=False, batch_sizes=[1])
    outs = profile_model(toy, cfg, BackendConfig(), device="cpu", work_dir=tmp_path, images=images)
    lat = _by_task(outs)["latency"]
    assert lat.status == "ok"
    assert lat.details["input"] == "dataset"
    assert not any("random input" in d for d in lat.setup["deviations"])
    assert any(d.code == "timed" and d.actual == "end-to-end" for d in lat.setup["deviations"])


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (BackendConfig(name="tensorrt", dtype="fp16"), "NVIDIA GPU"),
        (
            BackendConfig(name="onnxruntime", dtype="bf16"),
            "does not support bf16",
        ),  # eager fp16 runs on the CPU
        (
            BackendConfig(name="onnxruntime", options={"providers": ["TensorrtExecutionProvider"]}),
            "not available",
        ),
    ],
)
def test_unavailable_backends_are_skipped_with_the_reason(
    toy: ToyAdapter, tmp_path: Path, backend: BackendConfig, reason: str
) -> None:
    outs = profile_model(toy, FAST, backend, device="cpu", work_dir=tmp_path)
    by = _by_task(outs)
    assert by["complexity"].status == "ok"  # the rest goes on
    for task in ("latency", "throughput"):
        assert by[task].status == "skipped"
        assert reason in by[task].reason
        assert by[task].metrics == {}  # never a number


def test_cuda_without_a_gpu_is_a_skip(toy: ToyAdapter, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    outs = profile_model(
        toy, replace(FAST, complexity=False), BackendConfig(), device="cuda", work_dir=tmp_path
    )
    assert {o.status for o in outs} == {"skipped"}
    assert "no CUDA device" in outs[0].reason


@pytest.mark.parametrize(
    ("backend", "device", "field"),
    [
        (BackendConfig(name="openvno"), "cpu", "backend.name"),  # not a registered backend
        (BackendConfig(dtype="fp8"), "cpu", "backend.dtype"),  # type: ignore[arg-type]  # not a precision
        (BackendConfig(), "tpu", "device"),
    ],
)
def test_unknown_names_are_clear_errors(
    toy: ToyAdapter, tmp_path: Path, backend: BackendConfig, device: str, field: str
) -> None:
    with pytest.raises(DfineBenchError, match=field):
        profile_model(toy, replace(FAST, complexity=False), backend, device=device, work_dir=tmp_path)


class _SvdNet(ToyDetNet):
    """The toy with an SVD inside: ONNX has no SVD, so neither exporter can export it."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, boxes = super().forward(x)
        return logits + torch.linalg.svdvals(x[:, 0, :8, :8]).mean(), boxes


def test_onnx_export_failure_names_the_op_and_the_rest_goes_on(tmp_path: Path) -> None:
    toy = ToyAdapter()
    toy.model = _SvdNet().eval()
    outs = profile_model(toy, FAST, BackendConfig(name="onnxruntime"), device="cpu", work_dir=tmp_path)
    by = _by_task(outs)
    assert by["complexity"].status == "ok"
    lat = by["latency"]
    assert lat.status == "failed"
    assert "ONNX export failed" in lat.reason
    assert lat.details["onnx_failed_op"] and "svd" in lat.details["onnx_failed_op"].lower()
    assert "svd" in lat.reason.lower()


def test_outputs_that_disagree_with_eager_are_not_timed(
    toy: ToyAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = profile_mod.build_backend

    def wrong_build(*args, **kwargs) -> BackendRunner:
        runner = real_build(*args, **kwargs)
        inner = runner.to_torch
        runner.to_torch = lambda out: tuple(t + 0.5 for t in inner(out))
        return runner

    monkeypatch.setattr(profile_mod, "build_backend", wrong_build)
    outs = profile_model(
        toy, FAST, BackendConfig(name="onnxruntime", atol=0.01), device="cpu", work_dir=tmp_path
    )
    lat = _by_task(outs)["latency"]
    assert lat.status == "failed"
    assert "differ from eager" in lat.reason
    assert lat.metrics["output_max_abs_diff"].value == pytest.approx(0.5, abs=1e-3)
    assert "latency_median" not in lat.metrics


@pytest.mark.parametrize("breaks", ["first call", "timed calls"])
def test_a_backend_that_raises_is_recorded_and_the_counts_are_kept(
    toy: ToyAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, breaks: str
) -> None:
    real_build = profile_mod.build_backend
    calls = {"n": 0}

    def breaking_build(*args, **kwargs) -> BackendRunner:
        runner = real_build(*args, **kwargs)
        inner = runner.call

        def call(native):
            calls["n"] += 1
            if breaks == "first call" or calls["n"] > 1:
                raise RuntimeError("the runtime fell over")
            return inner(native)

        runner.call = call
        return runner

    monkeypatch.setattr(profile_mod, "build_backend", breaking_build)
    outs = profile_model(toy, FAST, BackendConfig(name="onnxruntime"), device="cpu", work_dir=tmp_path)
    by = _by_task(outs)
    assert by["complexity"].status == "ok" and by["complexity"].metrics["params"].value > 0
    for task, key in (("latency", "onnxruntime-fp32-bs1"), ("throughput", "onnxruntime-fp32")):
        assert by[task].status == "failed" and by[task].key == key  # the key a success would have had
        assert "RuntimeError: the runtime fell over" in by[task].reason


def test_noisy_timings_are_flagged(toy: ToyAdapter, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = replace(FAST, complexity=False, throughput=False, cv_warn=0.0)
    outs = profile_model(toy, cfg, BackendConfig(), device="cpu", work_dir=tmp_path)
    lat = _by_task(outs)["latency"]
    assert any("coefficient of variation" in n for n in lat.notes)
    assert "coefficient of variation" in caplog.text


def test_paper_protocol_off_t4_is_labelled(toy: ToyAdapter, tmp_path: Path) -> None:
    cfg = replace(FAST, complexity=False, throughput=False)
    outs = profile_model(toy, cfg, BackendConfig(), device="cpu", work_dir=tmp_path, protocol="paper_t4")
    lat = _by_task(outs)["latency"]
    assert lat.setup["protocol"] == "paper_t4"
    assert any("not comparable with the paper's T4" in n for n in lat.notes)


# -- throughput sweep -------------------------------------------------------------------
def test_out_of_memory_is_the_limit_not_a_crash() -> None:
    def make(bs: int):
        if bs >= 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return lambda: None

    res = run_sweep(make, [1, 2, 4, 8], device="cpu", warmup=0, iters=3, max_time_s=1)
    assert [(r.batch_size, r.status) for r in res] == [(1, "ok"), (2, "ok"), (4, "oom")]
    assert "out of memory" in res[-1].reason
    assert is_oom(RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested buffer"))
    assert not is_oom(ValueError("shape mismatch"))


def test_sweep_sizes_double_up_to_the_cap() -> None:
    assert sweep_sizes([1, 2, 4, 8], 64, extend=True) == [1, 2, 4, 8, 16, 32, 64]
    assert sweep_sizes([1, 2, 4, 8], 64, extend=False) == [1, 2, 4, 8]
    assert sweep_sizes([8, 1, 2, 1], 4, extend=False) == [1, 2]
    assert BatchResult(2, "ok", 10.0, 200.0).to_dict()["status"] == "ok"


# -- traces -----------------------------------------------------------------------------
def test_trace_is_readable_by_the_tensorboard_plugin(toy: ToyAdapter, tmp_path: Path) -> None:
    cfg = replace(FAST, complexity=False, throughput=False, trace=True, trace_steps=2)
    outs = profile_model(toy, cfg, BackendConfig(), device="cpu", work_dir=tmp_path)
    by = _by_task(outs)
    trace = by["trace"]
    assert trace.status == "ok"
    tdir = Path(trace.details["trace_dir"])
    assert tdir.parent.parent == tmp_path / "traces"
    files = sorted(tdir.glob("*.pt.trace.json"))
    assert len(files) == 1
    json.loads(files[0].read_text())  # valid JSON
    top = trace.details["top_ops"]
    assert top and all({"op", "calls", "self_time_ms", "share"} <= set(r) for r in top)
    assert sum(r["share"] for r in top) <= 1.0 + 1e-9
    assert any("conv" in r["op"] or "addmm" in r["op"] or "linear" in r["op"] for r in top)
    assert by["latency"].details["top_ops"] == top

    # torch-tb-profiler's own parser and run generator accept the file (what `tensorboard` loads)
    from torch_tb_profiler import consts
    from torch_tb_profiler.profiler.data import RunProfileData
    from torch_tb_profiler.profiler.run_generator import RunGenerator

    match = consts.WORKER_PATTERN.match(files[0].name)
    assert match is not None
    data = RunProfileData.parse(match.group(1), None, str(files[0]), str(tmp_path / "tbcache"))
    profile = RunGenerator(match.group(1), None, data).generate_run_profile()
    assert profile.views  # overview, operator view, ... available in TensorBoard


@pytest.mark.gpu
def test_gpu_backends_run_and_agree_with_eager(toy: ToyAdapter, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the fp16/bf16, ORT CUDA and TensorRT paths need a GPU")
    for backend in (BackendConfig(dtype="fp16", atol=0.05), BackendConfig(dtype="bf16", atol=0.1)):
        outs = profile_model(toy, FAST, backend, device="cuda", work_dir=tmp_path, include_complexity=False)
        lat = _by_task(outs)["latency"]
        assert lat.status == "ok", lat.reason
        assert lat.details["timer"] == "cuda_event"
        assert lat.metrics["cuda_max_allocated"].value > 0
    for backend in (
        BackendConfig(name="tensorrt", dtype="fp16", atol=0.05),
        BackendConfig(name="onnxruntime"),
    ):
        outs = profile_model(toy, FAST, backend, device="cuda", work_dir=tmp_path, include_complexity=False)
        for o in outs:
            assert o.status in ("ok", "skipped"), o.reason
