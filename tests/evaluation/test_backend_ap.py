"""AP on the deployed artifact: evaluation through a profiling backend equals eager's."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from dfine_bench.config.settings import DatasetSettings, EvaluationSettings
from dfine_bench.data import ResolvedDataset, resolve_dataset
from dfine_bench.records.schema import TaskOutcome


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory: pytest.TempPathFactory) -> ResolvedDataset:
    cfg = DatasetSettings(kind="generated", num_images=6, image_size=[320, 320], seed=7)
    return resolve_dataset(cfg, tmp_path_factory.mktemp("backend_ap"))


def _fixture_model(device: str = "cpu") -> Any:
    from dfine_bench.adapters import create_model
    from dfine_bench.adapters.registry import list_models

    if "dfine_fixture" not in list_models():
        pytest.skip("the trained dfine_fixture model is not registered")
    return create_model("dfine_fixture", weights="auto", device=device).to(device)


def _evaluate(
    data: ResolvedDataset, backends: list[str], work: Path, device: str = "cpu"
) -> list[TaskOutcome]:
    from dfine_bench.evaluation import evaluate_model

    cfg = EvaluationSettings(batch_size=2, num_workers=0, backends=backends)
    return evaluate_model(_fixture_model(device), data, cfg, work, device=device, progress=False)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")
def test_onnxruntime_ap_equals_eager_within_a_tenth(fixture_data: ResolvedDataset, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    eager, ort = _evaluate(fixture_data, ["eager", "onnxruntime"], tmp_path)
    assert (eager.key, ort.key) == ("faster_coco_eval", "faster_coco_eval-onnxruntime-fp32")
    assert eager.status == ort.status == "ok", (eager.reason, ort.reason)
    assert ort.setup["backend"] == "onnxruntime" and ort.setup["dtype"] == "fp32"
    assert Path(ort.details["backend_info"]["onnx_file"]).is_file()  # the artifact profiling times
    assert eager.metrics["AP"].value > 10.0  # a model that detects, so the comparison means something
    assert abs(ort.metrics["AP"].value - eager.metrics["AP"].value) <= 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="FP16/BF16 AP needs a CUDA device")
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_ap_close_to_fp32_on_gpu(
    fixture_data: ResolvedDataset, tmp_path: Path, dtype: str
) -> None:
    ref, half = _evaluate(fixture_data, ["eager", f"eager-{dtype}"], tmp_path, device="cuda")
    assert half.status == "ok", half.reason
    assert half.setup["dtype"] == dtype
    assert abs(half.metrics["AP"].value - ref.metrics["AP"].value) <= 1.0
