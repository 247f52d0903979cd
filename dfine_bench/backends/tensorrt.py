"""A TensorRT engine built from the ONNX export (NVIDIA GPUs only; ``pip install 'dfine-bench[tensorrt]'``).

The engine itself (building, caching, running on torch's stream) is ``backends/export/tensorrt_engine.py``;
``backend.options.workspace_gb`` caps the builder's workspace.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dfine_bench.backends._onnx import ONNX_FINGERPRINT, ONNX_OPTIONS, OnnxBackend
from dfine_bench.backends.base import BackendRunner, BackendSpec, BuildContext, Option
from dfine_bench.backends.registry import register_backend
from dfine_bench.errors import BackendUnavailable

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter


class TensorRTBackend(OnnxBackend):
    name = "tensorrt"
    description = "TensorRT engine from the ONNX export (the paper's T4 protocol: fp16, deploy graph)"
    packages = ("tensorrt",)
    install = "needs an NVIDIA GPU and pip install 'dfine-bench[tensorrt]'"
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {"cuda": ("fp32", "fp16")}
    display_name = "TensorRT"
    # builder_flags: what its runner reports; tensorrt, trt_builder_flags: how older records named them
    fingerprint_fields: ClassVar[tuple[str, ...]] = (
        "builder_flags",
        "tensorrt",
        "trt_builder_flags",
        *ONNX_FINGERPRINT,
    )
    options: ClassVar[Mapping[str, Option]] = {
        **ONNX_OPTIONS,
        "workspace_gb": Option(4.0, "builder workspace limit in GiB", float),
    }

    def check(self, dtype: str, device: str, options: Mapping[str, Any]) -> None:
        from dfine_bench.backends._torch import device_type

        if device_type(device) != "cuda":
            raise BackendUnavailable(
                "tensorrt backend needs an NVIDIA GPU (device=cuda); this run is on the CPU"
            )
        super().check(dtype, device, options)

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        import torch

        from dfine_bench.backends._torch import outputs_to_torch
        from dfine_bench.backends.export.tensorrt_engine import TensorRTEngine

        onnx_path, exporter = self.export_with_exporter(adapter, spec, ctx)
        shapes: tuple[tuple[int, ...], ...] = ((1, 3, *ctx.input_size),)
        if ctx.graph == "deploy":
            shapes += ((1, 2),)  # orig_target_sizes: (width, height) per image
        engine = TensorRTEngine.build(
            onnx_path,
            fp16=spec.dtype == "fp16",
            workspace_gb=float(spec.options["workspace_gb"]),
            input_shapes=shapes,
            max_batch_size=max(1, int(ctx.max_batch_size)),
            device=ctx.device,
            cache_dir=Path(ctx.work_dir) / "tensorrt",
        )

        def prepare(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(
                (x.to(ctx.device, torch.float32) if x.is_floating_point() else x.to(ctx.device)).contiguous()
                for x in inputs
            )

        return BackendRunner(
            name=self.name,
            dtype=spec.dtype,
            device=ctx.device,
            prepare=prepare,
            call=engine.infer,
            to_torch=outputs_to_torch,
            info={"onnx_file": str(onnx_path), "onnx_exporter": exporter, **engine.describe()},
            graph=ctx.graph,
        )


register_backend(TensorRTBackend())
