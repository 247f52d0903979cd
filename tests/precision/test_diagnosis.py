"""The layer-by-layer diagnosis names the layer that breaks a precision (planted FP16 overflow)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from dfine_bench.adapters.registry import create_model
from dfine_bench.backends._onnx_precision import (
    PrecisionError,
    int8_file,
    module_of_node,
    node_scope_pattern,
)
from dfine_bench.profiling.precision_diagnosis import FP16_MAX, diagnose_torch

PLANTED = "inner.model.encoder.aifi.0.layers.0.mlp.layers.0"


@pytest.fixture(scope="module")
def fixture_adapter():  # type: ignore[no-untyped-def]
    a = create_model("dfine_fixture", weights="fixture")
    a.eval()
    return a


def _images(adapter) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, 320, 320, generator=g)]


def _peak(module: torch.nn.Module, name: str, x: torch.Tensor) -> float:
    seen: list[float] = []
    handle = dict(module.named_modules())[name].register_forward_hook(
        lambda _m, _i, o: seen.append(float(o.abs().max()))
    )
    with torch.inference_mode():
        module(x)
    handle.remove()
    return seen[0]


def test_a_planted_fp16_overflow_is_named_exactly(fixture_adapter) -> None:  # type: ignore[no-untyped-def]
    adapter = copy.deepcopy(fixture_adapter)  # a copy: the fixture stays as it is
    images = _images(adapter)
    layer = dict(adapter.export_module().named_modules())[PLANTED]
    peak = _peak(adapter.export_module(), PLANTED, images[0])
    scale = 4 * FP16_MAX / peak  # its output now passes 65504 (finite in fp32, inf in fp16)
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.mul_(scale)
    assert FP16_MAX < _peak(adapter.export_module(), PLANTED, images[0]) < 1e30

    d = diagnose_torch(adapter, "fp16", images, repeats=1)
    assert d.first_nonfinite is not None
    assert d.first_nonfinite.name == PLANTED
    assert d.culprit is not None and d.culprit.module == PLANTED
    assert d.over_fp16 and d.over_fp16[0].name == PLANTED  # the activation range says why
    assert not d.outputs_finite


def test_without_the_plant_that_layer_is_not_blamed(fixture_adapter) -> None:  # type: ignore[no-untyped-def]
    d = diagnose_torch(fixture_adapter, "fp16", _images(fixture_adapter), repeats=1)
    assert all(s.name != PLANTED for s in d.over_fp16)
    assert d.first_nonfinite is None or d.first_nonfinite.name != PLANTED


def test_onnx_node_names_map_to_module_paths() -> None:
    node = "/inner/model/decoder/layers.0/encoder_attn/MatMul"
    assert module_of_node(node) == "inner.model.decoder.layers.0.encoder_attn"
    assert node_scope_pattern("inner.model.decoder.layers.0.encoder_attn") == (
        "/inner/model/decoder/layers.0/encoder_attn/*"
    )


def test_a_quantization_without_calibration_data_fails_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(PrecisionError, match="calibration images"):
        int8_file(tmp_path / "m.onnx", None, method="MinMax", keep_fp32=[])
