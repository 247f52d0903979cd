"""``torch.compile`` (inductor) of the adapter's export module; ``backend.options.mode`` picks the mode."""

from __future__ import annotations

import shutil
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
from dfine_bench.errors import BackendUnavailable

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileBackend(BaseBackend):
    name = "compile"
    description = "torch.compile (inductor); fp16/bf16 on a GPU"
    packages = ("torch",)
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {"cpu": ("fp32",), "cuda": ("fp32", "fp16", "bf16")}
    graphs: ClassVar[tuple[str, ...]] = GRAPHS
    display_name = "torch.compile"
    fingerprint_fields: ClassVar[tuple[str, ...]] = ("compile_mode",)
    options: ClassVar[Mapping[str, Option]] = {"mode": Option("default", "torch.compile mode", str, MODES)}

    def check(self, dtype: str, device: str, options: Mapping[str, Any]) -> None:
        from dfine_bench.backends._torch import check_bf16, device_type

        super().check(dtype, device, options)
        check_bf16(self.name, dtype, device)
        if device_type(device) == "cpu" and shutil.which("cc") is None and shutil.which("gcc") is None:
            raise BackendUnavailable("compile backend on the CPU needs a C compiler (cc/gcc) for inductor")

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        import torch

        from dfine_bench.backends._torch import torch_module, torch_runner

        mode = str(spec.options["mode"])
        module = torch_module(adapter, spec.dtype, ctx.device, ctx.graph)
        try:
            compiled = torch.compile(module, mode=None if mode == "default" else mode)
        except RuntimeError as exc:  # e.g. an unsupported Python version for dynamo
            raise BackendUnavailable(f"torch.compile is not available here: {exc}") from exc
        return torch_runner(self.name, compiled, spec.dtype, ctx.device, {"compile_mode": mode}, ctx.graph)

    def describe(self) -> dict[str, Any]:
        import torch

        return {"torch_version": torch.__version__}


register_backend(CompileBackend())
