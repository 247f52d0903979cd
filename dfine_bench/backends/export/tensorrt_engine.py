"""A TensorRT engine built from an ONNX file with the ``tensorrt`` package, run on torch tensors.

One engine per batch size (min = opt = max shape for every input, as the paper's batch-1 protocol
builds it), built on first use and cached on disk next to the ONNX file, keyed by the ONNX file's
hash, the builder flags, the batch size and the TensorRT version. Any number of inputs (the model
graph takes the pixels, the deploy graph also the original sizes), given batch-first in the ONNX
file's input order. Inputs and outputs stay in CUDA memory owned by torch; ``infer`` enqueues on
torch's current stream, so CUDA-event timing (and CUDA-graph capture) around it sees the engine
alone. ``describe`` records the builder flags, the workspace and the optimisation profile.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfine_bench.errors import BackendUnavailable, DfineBenchError

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class _Context:
    engine: Any
    context: Any
    outputs: dict[str, torch.Tensor]
    input_names: list[str]


@dataclass
class TensorRTEngine:
    onnx_path: Path
    fp16: bool
    workspace_gb: float
    input_shapes: tuple[tuple[int, ...], ...]  # per input, batch first (the batch is replaced)
    device: str
    cache_dir: Path
    max_batch_size: int = 1
    _trt: Any = None
    _logger: Any = None
    _runtime: Any = None
    _contexts: dict[int, _Context] = field(default_factory=dict)
    _onnx_hash: str = ""

    @classmethod
    def build(
        cls,
        onnx_path: Path,
        *,
        fp16: bool,
        workspace_gb: float,
        input_shapes: tuple[tuple[int, ...], ...],
        max_batch_size: int,
        device: str,
        cache_dir: Path,
    ) -> TensorRTEngine:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendUnavailable(f"tensorrt backend: cannot import tensorrt ({exc})") from exc
        self = cls(
            onnx_path=Path(onnx_path),
            fp16=fp16,
            workspace_gb=workspace_gb,
            input_shapes=tuple(tuple(int(d) for d in shape) for shape in input_shapes),
            device=device,
            cache_dir=Path(cache_dir),
            max_batch_size=max_batch_size,
        )
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._onnx_hash = _sha256(self.onnx_path)[:16]
        self._context_for(int(self.input_shapes[0][0]))  # build the batch-1 engine now: fail early
        return self

    @property
    def builder_flags(self) -> list[str]:
        """The ``trt.BuilderFlag`` names set on the builder config (what changes the engine's speed)."""
        return ["FP16"] if self.fp16 else []

    def describe(self) -> dict[str, Any]:
        return {
            "tensorrt_version": self._trt.__version__,
            "tensorrt_precision": "fp16" if self.fp16 else "fp32",
            "builder_flags": self.builder_flags,
            "tensorrt_workspace_gb": self.workspace_gb,
            "tensorrt_profile": {
                "shapes": [list(s) for s in self.input_shapes],
                "rule": "min = opt = max, one engine per batch size",
            },
            "tensorrt_engines": sorted(str(self._engine_path(b)) for b in self._contexts),
        }

    def _shape(self, index: int, batch: int) -> tuple[int, ...]:
        return (batch, *self.input_shapes[index][1:])

    def _engine_path(self, batch: int) -> Path:
        flags = "-".join(f.lower() for f in self.builder_flags) or "fp32"
        name = f"{self.onnx_path.stem}-{self._onnx_hash}-bs{batch}-{flags}-trt{self._trt.__version__}.engine"
        return self.cache_dir / name

    def _serialize(self, batch: int) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        flags = 0
        if (
            hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
            and int(trt.__version__.split(".")[0]) < 10
        ):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(self.onnx_path.read_bytes()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise DfineBenchError(f"TensorRT could not parse {self.onnx_path}: {'; '.join(errors)[:800]}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(self.workspace_gb * (1 << 30)))
        if self.fp16:
            if not builder.platform_has_fast_fp16:
                log.warning("TensorRT: this GPU has no fast FP16; building an FP16 engine anyway")
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        if network.num_inputs != len(self.input_shapes):
            raise DfineBenchError(
                f"{self.onnx_path} has {network.num_inputs} inputs; "
                f"{len(self.input_shapes)} shapes were given"
            )
        for i in range(network.num_inputs):
            shape = self._shape(i, batch)
            profile.set_shape(network.get_input(i).name, shape, shape, shape)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise DfineBenchError(
                f"TensorRT could not build an engine from {self.onnx_path} at batch {batch}"
            )
        return bytes(serialized)

    def _context_for(self, batch: int) -> _Context:
        if batch in self._contexts:
            return self._contexts[batch]
        trt = self._trt
        path = self._engine_path(batch)
        if path.is_file():
            data = path.read_bytes()
        else:
            log.info("building TensorRT engine %s (minutes on a first run)", path.name)
            data = self._serialize(batch)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        with torch.cuda.device(torch.device(self.device)):
            engine = self._runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise DfineBenchError(f"TensorRT could not load the engine {path}; delete it to rebuild")
            context = engine.create_execution_context()
            input_names: list[str] = []
            outputs: dict[str, torch.Tensor] = {}
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    context.set_input_shape(name, self._shape(len(input_names), batch))
                    input_names.append(name)
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                    np_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
                    torch_dtype = torch.from_numpy(np.empty(0, dtype=np_dtype)).dtype
                    out_shape = tuple(context.get_tensor_shape(name))
                    outputs[name] = torch.empty(out_shape, dtype=torch_dtype, device=self.device)
                    context.set_tensor_address(name, outputs[name].data_ptr())
        ctx = _Context(engine=engine, context=context, outputs=outputs, input_names=input_names)
        self._contexts[batch] = ctx
        return ctx

    def infer(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Run the engine on ``inputs`` (CUDA, contiguous, in the ONNX file's input order: pixels fp32,
        original sizes int64); outputs in the ONNX file's order."""
        ctx = self._context_for(int(inputs[0].shape[0]))
        for name, x in zip(ctx.input_names, inputs, strict=True):
            ctx.context.set_tensor_address(name, x.data_ptr())
        stream = torch.cuda.current_stream(torch.device(self.device))
        if not ctx.context.execute_async_v3(stream.cuda_stream):
            raise DfineBenchError("TensorRT execute_async_v3 failed")
        return tuple(ctx.outputs.values())
