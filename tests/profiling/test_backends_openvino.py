"""OpenVINO: the backend added through the registry alone; its outputs are checked against eager."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from profiling_toys import ToyAdapter

from dfine_bench.backends import build_backend
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.profiling import profile_model
from dfine_bench.profiling.output_check import compare_outputs

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'dfine-bench[openvino]')")

FAST = ProfileSettings(
    warmup=2,
    iters=10,
    min_iters=5,
    max_time_s=2.0,
    batch_sizes=(1, 2),
    throughput_iters=3,
    complexity=False,
    threads=1,
)


def test_openvino_is_checked_against_eager_then_timed(toy: ToyAdapter, tmp_path: Path) -> None:
    outs = profile_model(toy, FAST, {"name": "openvino"}, device="cpu", work_dir=tmp_path)
    by = {o.task: o for o in outs}
    assert set(by) == {"latency", "throughput"}
    lat = by["latency"]
    assert lat.status == "ok", lat.reason
    assert lat.key == "openvino-fp32-bs1"
    assert 0.0 <= lat.metrics["output_max_abs_diff"].value < 1e-4
    assert lat.details["output_check"]["reference"].startswith("eager fp32")
    info = lat.details["backend_info"]
    assert info["inference_precision"] == "f32"  # never OpenVINO's bf16 default on AMX/avx512-bf16 CPUs
    assert info["num_threads"] == 1 and info["performance_hint"] == "LATENCY"
    assert info["openvino_version"] and Path(info["onnx_file"]).is_file()
    assert "openvino fp32, not TensorRT FP16" in lat.setup["deviations"]
    thr = by["throughput"]
    assert thr.status == "ok" and [r["batch_size"] for r in thr.details["by_batch_size"]] == [1, 2]


def test_openvino_runs_the_onnx_file_onnxruntime_runs(toy: ToyAdapter, tmp_path: Path) -> None:
    ort = build_backend(toy, {"name": "onnxruntime"}, device="cpu", work_dir=tmp_path, input_size=(64, 64))
    ov = build_backend(toy, {"name": "openvino"}, device="cpu", work_dir=tmp_path, input_size=(64, 64))
    assert ov.info["onnx_file"] == ort.info["onnx_file"]
    x = toy.example_input(3)  # a batch the export never saw: the batch axis is dynamic
    for a, b in zip(ort(x), ov(x)):
        assert a.shape == b.shape and a.shape[0] == 3
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_dfine_n_on_openvino_matches_eager(tmp_path: Path) -> None:
    from dfine_bench.adapters import create_model

    torch.set_num_threads(2)
    size = (320, 320)  # D-FINE-N's top-300 query selection needs over 300 anchors: 320 is the least
    adapter = create_model("dfine_n", weights="random-init", input_size=list(size))
    runner = build_backend(adapter, {"name": "openvino"}, device="cpu", work_dir=tmp_path, input_size=size)
    x = adapter.example_input(1, size)
    with torch.inference_mode():
        ref = tuple(adapter.export_module().eval()(x))
    diff = compare_outputs(ref, runner(x))
    assert diff.matched_max_abs_diff < 1e-3, diff.to_dict()
