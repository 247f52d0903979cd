"""PyTorch eager: the reference every other backend is checked against, and the eager precisions.

fp16 and bf16 run on a copy of the model whose weights, buffers and activations are really in that
dtype (not autocast, which keeps many ops in fp32): the fp32 pixels are cast on entry and the
outputs cast back to fp32 for the postprocessor. ``backend.options.keep_fp32=[patterns]`` keeps
the modules whose paths match (``fnmatch``, e.g. ``inner.model.decoder.layers.0.encoder_attn``)
in fp32 inside such a model, casting at their boundaries: the verified fix of a precision cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dfine_bench.backends.base import (
    GRAPHS,
    BackendRunner,
    BackendSpec,
    BaseBackend,
    BuildContext,
    Option,
)
from dfine_bench.backends.registry import register_backend

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter

KEEP_FP32 = Option(
    [], "module paths (fnmatch patterns) kept in fp32 inside an fp16/bf16 model (mixed precision)", list
)


class EagerBackend(BaseBackend):
    name = "eager"
    description = "PyTorch eager (the reference); fp16/bf16 (weights and activations) on the CPU and GPU"
    packages = ("torch",)
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "cpu": ("fp32", "fp16", "bf16"),
        "cuda": ("fp32", "fp16", "bf16"),
    }
    graphs: ClassVar[tuple[str, ...]] = GRAPHS
    display_name = "PyTorch eager"
    options: ClassVar[Mapping[str, Option]] = {"keep_fp32": KEEP_FP32}

    def check(self, dtype: str, device: str, options: Mapping[str, Any]) -> None:
        from dfine_bench.backends._torch import check_bf16

        super().check(dtype, device, options)
        check_bf16(self.name, dtype, device)

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        from dfine_bench.backends._torch import (
            keep_fp32,
            module_megabytes,
            parameter_dtypes,
            torch_module,
            torch_runner,
        )

        module = torch_module(adapter, spec.dtype, ctx.device, ctx.graph)
        kept = keep_fp32(module, list(spec.options.get("keep_fp32") or []), spec.dtype)
        info: dict[str, Any] = {
            "artifact_mb": module_megabytes(module),
            "artifact": "weights in memory",
            "parameter_dtypes": parameter_dtypes(module),
        }
        if kept:
            info["kept_fp32"] = kept
        return torch_runner(self.name, module, spec.dtype, ctx.device, info=info, graph=ctx.graph)

    def describe(self) -> dict[str, Any]:
        import torch

        return {"torch_version": torch.__version__}


register_backend(EagerBackend())
