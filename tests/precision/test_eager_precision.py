"""Eager fp16/bf16 really run in that dtype; keep_fp32 keeps exactly the named modules in fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dfine_bench.adapters.registry import create_model
from dfine_bench.backends import build_backend, resolve_backend
from dfine_bench.backends._torch import keep_fp32, torch_module


@pytest.fixture(scope="module")
def adapter():  # type: ignore[no-untyped-def]
    a = create_model("dfine_fixture", weights="random-init")
    a.eval()
    return a


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_eager_reduced_precision_holds_weights_and_activations_in_that_dtype(
    adapter, dtype, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    want = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    module = torch_module(adapter, dtype, "cpu")
    assert {p.dtype for p in module.parameters()} == {want}
    seen: list[torch.dtype] = []
    linear = dict(module.named_modules())["inner.model.encoder.aifi.0.layers.0.mlp.layers.0"]
    linear.register_forward_hook(lambda _m, i, o: seen.extend([i[0].dtype, o.dtype]))
    x = adapter.example_input(1, (320, 320)).float()
    with torch.inference_mode():
        module(x.to(want))
    assert seen == [want, want]  # not autocast: the activations are in that dtype too
    # the backend: fp32 pixels in, fp32 outputs out (for the postprocessor), fp16 weights inside
    spec = resolve_backend({"name": "eager", "dtype": dtype})
    runner = build_backend(adapter, spec, device="cpu", work_dir=tmp_path, input_size=(320, 320))
    assert runner.info["parameter_dtypes"] == {str(want).removeprefix("torch."): adapter.num_parameters()}
    assert all(o.dtype == torch.float32 for o in runner(x))
    assert {p.dtype for p in adapter.model.parameters()} == {torch.float32}  # the reference stays fp32


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.block = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.last = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.block(self.first(x)))


def test_keep_fp32_runs_the_matched_modules_in_fp32_and_casts_at_their_boundaries() -> None:
    module = _Toy().to(torch.float16)
    kept = keep_fp32(module, ["block*"], "fp16")
    assert kept == ["block"]  # its children come with it
    assert {p.dtype for p in module.block.parameters()} == {torch.float32}
    assert {p.dtype for p in module.first.parameters()} == {torch.float16}
    assert {p.dtype for p in module.last.parameters()} == {torch.float16}
    inside: list[torch.dtype] = []
    module.block[1].register_forward_hook(lambda _m, i, o: inside.extend([i[0].dtype, o.dtype]))
    out = module(torch.randn(3, 4, dtype=torch.float16))
    assert inside == [torch.float32, torch.float32]
    assert out.dtype == torch.float16
    assert keep_fp32(_Toy().to(torch.float16), ["nothing*"], "fp16") == []
