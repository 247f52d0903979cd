"""Torch helpers the backends share: device checks and a runner around a PyTorch callable.

Imported only when a backend is checked or built, so the registry stays torch-free.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.errors import BackendUnavailable, DfineBenchError
from dfine_bench.profiling.backends.base import BackendRunner

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def device_type(device: str) -> str:
    """``cpu`` or ``cuda`` for a device string; anything else is a ``DfineBenchError`` naming ``device``."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DfineBenchError(f"device={device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise DfineBenchError(f"device={device!r} is not supported; use cpu, cuda or cuda:N")
    return dev.type


def check_device(device: str) -> None:
    """A skip (``BackendUnavailable``) for a CUDA device this machine does not have."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"device={device!r}: no CUDA device is available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendUnavailable(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )


def check_bf16(name: str, dtype: str, device: str) -> None:
    if dtype == "bf16" and device_type(device) == "cuda" and not torch.cuda.is_bf16_supported():
        raise BackendUnavailable(f"{name} bf16: {torch.cuda.get_device_name(device)} does not support bf16")


def prepare_adapter(adapter: DetectorAdapter, device: str) -> None:
    """The adapter in fp32 on ``device`` and in eval mode: the reference every backend is checked against."""
    adapter.to(device, torch.float32)
    adapter.eval()


def torch_module(adapter: DetectorAdapter, dtype: str, device: str) -> torch.nn.Module:
    """The adapter's export module; a half-precision copy for fp16/bf16, so the adapter stays fp32."""
    module = adapter.export_module().eval()
    if dtype != "fp32":
        module = copy.deepcopy(module).to(device=device, dtype=TORCH_DTYPES[dtype])
    return module


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out)


def torch_runner(
    name: str,
    module: Callable[[torch.Tensor], Any],
    dtype: str,
    device: str,
    info: dict[str, Any] | None = None,
) -> BackendRunner:
    """A runner around a PyTorch callable (eager or compiled): inputs cast to ``dtype`` on ``device``."""
    torch_dtype = TORCH_DTYPES[dtype]

    def call(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            return _as_tuple(module(x))

    return BackendRunner(
        name=name,
        dtype=dtype,
        device=device,
        prepare=lambda x: x.to(device=device, dtype=torch_dtype),
        call=call,
        to_torch=lambda out: tuple(t.float() for t in out),
        info=dict(info or {}),
    )
