"""The TensorRT engine wrapper's bookkeeping, against a stand-in ``tensorrt`` module on the CPU.

No GPU or TensorRT here: the stand-in implements the part of TensorRT's Python API the wrapper
calls and records what it was asked, so the deploy graph's two inputs (pixels and original
sizes), the optimisation profile, the builder flags, the engine cache and the output dtypes are
checked where they can be. The real engine runs in ``benchmarks/gpu_check.sh`` on a GPU.
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dfine_bench.backends.export.tensorrt_engine import TensorRTEngine


class _Net:
    def __init__(self, inputs: list[str]) -> None:
        self.num_inputs = len(inputs)
        self._inputs = [types.SimpleNamespace(name=n) for n in inputs]

    def get_input(self, i: int) -> Any:
        return self._inputs[i]


class _Engine:
    """Deploy-graph tensors: two inputs, then labels (int64), boxes and scores."""

    IO = (
        ("images", "in"),
        ("orig_target_sizes", "in"),
        ("labels", "out"),
        ("boxes", "out"),
        ("scores", "out"),
    )

    def __init__(self, trt: Any) -> None:
        self.trt = trt
        self.num_io_tensors = len(self.IO)

    def get_tensor_name(self, i: int) -> str:
        return self.IO[i][0]

    def get_tensor_mode(self, name: str) -> Any:
        mode = dict(self.IO)[name]
        return self.trt.TensorIOMode.INPUT if mode == "in" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> str:
        return "int64" if name == "labels" else "float32"

    def create_execution_context(self) -> Any:
        return _Context(self.trt)


class _Context:
    def __init__(self, trt: Any) -> None:
        self.trt = trt
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        batch = self.shapes["images"][0]
        return (batch, 300, 4) if name == "boxes" else (batch, 300)

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def execute_async_v3(self, stream: int) -> bool:
        self.trt.executed.append(dict(self.addresses))
        return True


def fake_tensorrt() -> Any:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.4.0"
    trt.calls = []  # type: ignore[attr-defined]
    trt.executed = []  # type: ignore[attr-defined]
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})  # type: ignore[attr-defined]
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace()  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")  # type: ignore[attr-defined]
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16")  # type: ignore[attr-defined]
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")  # type: ignore[attr-defined]
    trt.nptype = lambda dtype: np.dtype(dtype)  # type: ignore[attr-defined]

    class Profile:
        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            trt.calls.append(("profile", name, tuple(lo), tuple(opt), tuple(hi)))

    class Config:
        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            trt.calls.append(("workspace", size))

        def set_flag(self, flag: str) -> None:
            trt.calls.append(("flag", flag))

        def add_optimization_profile(self, profile: Profile) -> None:
            pass

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger: Any) -> None:
            pass

        def create_network(self, flags: int) -> _Net:
            return _Net(["images", "orig_target_sizes"])

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: _Net, config: Config) -> bytes:
            trt.calls.append(("build",))
            return b"engine"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: _Net, logger: Any) -> None:
            pass

        def parse(self, data: bytes) -> bool:
            return True

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> _Engine:
            return _Engine(trt)

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime  # type: ignore[attr-defined]
    return trt


@pytest.fixture()
def trt(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    # the engine's CUDA calls, on the CPU
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(
        torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=0)
    )
    return fake


def _build(tmp_path: Path) -> TensorRTEngine:
    onnx = tmp_path / "dfine_n-640x640-opset17-deploy.onnx"
    if not onnx.exists():
        onnx.write_bytes(b"onnx bytes")
    return TensorRTEngine.build(
        onnx,
        fp16=True,
        workspace_gb=1.0,
        input_shapes=((1, 3, 64, 64), (1, 2)),
        max_batch_size=1,
        device="cpu",
        cache_dir=tmp_path / "tensorrt",
    )


def test_the_deploy_graph_engine_binds_both_inputs_and_keeps_integer_labels(trt: Any, tmp_path: Path) -> None:
    engine = _build(tmp_path)
    profiles = [c for c in trt.calls if c[0] == "profile"]
    assert profiles == [
        ("profile", "images", (1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64)),
        ("profile", "orig_target_sizes", (1, 2), (1, 2), (1, 2)),
    ]
    assert ("flag", "FP16") in trt.calls and ("workspace", 1 << 30) in trt.calls
    info = engine.describe()
    assert info["builder_flags"] == ["FP16"] and info["tensorrt_version"] == "10.4.0"
    assert info["tensorrt_profile"]["shapes"] == [[1, 3, 64, 64], [1, 2]]
    (path,) = info["tensorrt_engines"]
    assert Path(path).name.endswith("-bs1-fp16-trt10.4.0.engine") and Path(path).is_file()

    images, sizes = torch.zeros(1, 3, 64, 64), torch.tensor([[640, 480]])
    labels, boxes, scores = engine.infer((images, sizes))
    assert scores.dtype == torch.float32
    (bound,) = trt.executed
    assert bound["images"] == images.data_ptr() and bound["orig_target_sizes"] == sizes.data_ptr()
    assert labels.dtype == torch.int64 and tuple(labels.shape) == (1, 300)
    assert boxes.dtype == torch.float32 and tuple(boxes.shape) == (1, 300, 4)


def test_a_built_engine_is_reused_from_the_cache(trt: Any, tmp_path: Path) -> None:
    _build(tmp_path)
    assert trt.calls.count(("build",)) == 1
    _build(tmp_path)  # same ONNX file, flags, batch and version: read back, not rebuilt
    assert trt.calls.count(("build",)) == 1
