"""Torch helpers the backends share: device checks and a runner around a PyTorch callable.

Imported only when a backend is checked or built, so the registry stays torch-free.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
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


def torch_module(adapter: DetectorAdapter, dtype: str, device: str, graph: str = "model") -> torch.nn.Module:
    """The adapter's export module (``graph="deploy"``: with its top-k postprocessor, ``DeployModel``);
    a half-precision copy for fp16/bf16, so the adapter stays fp32."""
    module: torch.nn.Module
    if graph == "deploy":
        from dfine_bench.profiling.deploy_export import DeployModel

        module = DeployModel(adapter).eval()
    else:
        module = adapter.export_module().eval()
    if dtype != "fp32":
        module = copy.deepcopy(module).to(device=device, dtype=TORCH_DTYPES[dtype])
    return module


def host_array(x: torch.Tensor) -> np.ndarray:
    """A contiguous numpy copy of an input on the host: floating ones fp32, integer ones as they are."""
    x = x.detach().to("cpu")
    return np.ascontiguousarray((x.float() if x.is_floating_point() else x).numpy())


def outputs_to_torch(outputs: Any) -> tuple[torch.Tensor, ...]:
    """Native outputs (tensors or numpy arrays) as torch tensors: floating ones fp32, integer ones
    (the deploy graph's labels) unchanged."""
    out = []
    for o in outputs:
        t = o if isinstance(o, torch.Tensor) else torch.from_numpy(np.asarray(o))
        out.append(t.float() if t.is_floating_point() else t)
    return tuple(out)


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out)


def torch_runner(
    name: str,
    module: Callable[..., Any],
    dtype: str,
    device: str,
    info: dict[str, Any] | None = None,
    graph: str = "model",
) -> BackendRunner:
    """A runner around a PyTorch callable (eager or compiled) of ``graph``: floating inputs cast to
    ``dtype`` on ``device``, integer ones (the deploy graph's original sizes) moved only."""
    torch_dtype = TORCH_DTYPES[dtype]

    def prepare(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(
            x.to(device=device, dtype=torch_dtype) if x.is_floating_point() else x.to(device) for x in inputs
        )

    def call(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            return _as_tuple(module(*inputs))

    return BackendRunner(
        name=name,
        dtype=dtype,
        device=device,
        prepare=prepare,
        call=call,
        to_torch=outputs_to_torch,
        info=dict(info or {}),
        graph=graph,
    )
