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
from dfine_bench.backends.base import BackendRunner
from dfine_bench.errors import BackendUnavailable, DfineBenchError

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
        from dfine_bench.backends.export.deploy import DeployModel

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


def _cast(obj: Any, dtype: torch.dtype) -> Any:
    """``obj`` with every floating tensor in it (tuples, lists, dicts, HF model outputs) cast to ``dtype``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and obj.dtype != dtype else obj
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_cast(o, dtype) for o in obj)
    if isinstance(obj, list):
        return [_cast(o, dtype) for o in obj]
    if isinstance(obj, dict):  # a HF ModelOutput is a dict too: cast in place, keep its class
        for k in list(obj.keys()):
            obj[k] = _cast(obj[k], dtype)
        return obj
    return obj


def match_modules(module: torch.nn.Module, patterns: list[str]) -> dict[str, list[str]]:
    """Pattern -> the module paths it matches (``fnmatch`` on ``named_modules`` names, e.g.
    ``inner.model.decoder.layers.0.encoder_attn`` or ``*.norm*``)."""
    import fnmatch

    names = [n for n, _ in module.named_modules() if n]
    return {p: [n for n in names if fnmatch.fnmatchcase(n, p)] for p in patterns}


def outermost(names: list[str]) -> list[str]:
    """The names not inside another listed one (a kept module's children are kept with it)."""
    chosen = sorted(set(names))
    return [n for n in chosen if not any(n.startswith(o + ".") for o in chosen if o != n)]


def keep_fp32(module: torch.nn.Module, patterns: list[str], dtype: str) -> list[str]:
    """Mixed precision: the modules ``patterns`` match go back to fp32 inside the ``dtype`` module;
    their floating inputs are cast to fp32 on entry and their outputs back to ``dtype`` on exit.
    Returns the outermost modules kept (empty when nothing matched or ``dtype`` is fp32)."""
    if dtype == "fp32" or not patterns:
        return []
    low = TORCH_DTYPES[dtype]
    matched = [n for names in match_modules(module, patterns).values() for n in names]
    kept = outermost(matched)
    by_name = dict(module.named_modules())
    for name in kept:
        sub = by_name[name].float()

        def to_fp32(_m: torch.nn.Module, args: Any, kwargs: Any) -> Any:
            return _cast(args, torch.float32), _cast(kwargs, torch.float32)

        def to_low(_m: torch.nn.Module, _args: Any, out: Any) -> Any:
            return _cast(out, low)

        sub.register_forward_pre_hook(to_fp32, with_kwargs=True)
        sub.register_forward_hook(to_low)
    return kept


def module_megabytes(module: torch.nn.Module) -> float:
    """What its parameters and buffers take, in MB (10^6 bytes), in the dtypes they are held in."""
    total = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    return round(total / 1e6, 3)


def parameter_dtypes(module: torch.nn.Module) -> dict[str, int]:
    """dtype -> how many parameters are held in it (what ``keep_fp32`` left in fp32 shows here)."""
    out: dict[str, int] = {}
    for p in module.parameters():
        key = str(p.dtype).removeprefix("torch.")
        out[key] = out.get(key, 0) + p.numel()
    return out
