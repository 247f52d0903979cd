"""PyTorch eager: the reference every other backend is checked against (fp32; fp16/bf16 on CUDA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dfine_bench.profiling.backends.base import GRAPHS, BackendRunner, BackendSpec, BaseBackend, BuildContext
from dfine_bench.profiling.backends.registry import register_backend

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter


class EagerBackend(BaseBackend):
    name = "eager"
    description = "PyTorch eager (the reference); fp16/bf16 on a GPU"
    packages = ("torch",)
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {"cpu": ("fp32",), "cuda": ("fp32", "fp16", "bf16")}
    graphs: ClassVar[tuple[str, ...]] = GRAPHS
    display_name = "PyTorch eager"

    def check(self, dtype: str, device: str, options: Mapping[str, Any]) -> None:
        from dfine_bench.profiling.backends._torch import check_bf16

        super().check(dtype, device, options)
        check_bf16(self.name, dtype, device)

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        from dfine_bench.profiling.backends._torch import torch_module, torch_runner

        module = torch_module(adapter, spec.dtype, ctx.device, ctx.graph)
        return torch_runner(self.name, module, spec.dtype, ctx.device, graph=ctx.graph)

    def describe(self) -> dict[str, Any]:
        import torch

        return {"torch_version": torch.__version__}


register_backend(EagerBackend())
