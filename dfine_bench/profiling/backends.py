"""The inference backends a model is profiled with, behind one small interface.

``build_backend`` turns an adapter and a ``BackendConfig`` into a ``BackendRunner``:
``prepare`` moves a batch into the backend's native input (done outside the timed region
for "model only" timing), ``call`` runs the model on it, ``to_torch`` turns the native
outputs back into the adapter's output tuple (``adapter.output_names`` order).

Backends: PyTorch ``eager`` (fp32; fp16/bf16 on CUDA), ``compile`` (``torch.compile``),
``onnxruntime`` (CPU; CUDA and TensorRT execution providers where installed), ``tensorrt``
(an engine built from the ONNX export with the ``tensorrt`` package, NVIDIA GPUs only).
Whatever this machine cannot run raises ``BackendUnavailable`` with the reason: a suite
records it as a skip, never as a number.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.errors import BackendUnavailable, DfineBenchError
from dfine_bench.profiling import _config as C
from dfine_bench.profiling.onnx_export import DEFAULT_EXPORTERS, export_onnx

log = logging.getLogger(__name__)

BACKENDS = ("eager", "compile", "onnxruntime", "tensorrt")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class BackendRunner:
    """One ready-to-time backend. ``info`` (provider list, engine path, exporter ...) goes in records."""

    name: str
    dtype: str
    device: str
    prepare: Callable[[torch.Tensor], Any]
    call: Callable[[Any], Any]
    to_torch: Callable[[Any], tuple[torch.Tensor, ...]]
    info: dict[str, Any] = field(default_factory=dict)

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.to_torch(self.call(self.prepare(pixel_values)))


def _is_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def validate(name: str, dtype: str, device: str) -> None:
    """Reject names that are not backends, dtypes or devices at all: a ``DfineBenchError``."""
    if name not in BACKENDS:
        raise DfineBenchError(f"backend.name={name!r} is not one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise DfineBenchError(f"backend.dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DfineBenchError(f"device={device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise DfineBenchError(f"device={device!r} is not supported; use cpu, cuda or cuda:N")


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


def check_backend(name: str, dtype: str, device: str) -> None:
    """Reject unknown names (an error) and combinations this machine cannot run (a skip)."""
    validate(name, dtype, device)
    check_device(device)
    cuda = _is_cuda(device)
    if name in ("eager", "compile") and dtype != "fp32" and not cuda:
        raise BackendUnavailable(f"{name} {dtype} runs on CUDA only; on the CPU use backend.dtype=fp32")
    if name in ("eager", "compile") and dtype == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise BackendUnavailable(f"{name} bf16: {torch.cuda.get_device_name(device)} does not support bf16")
    if name == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailable("onnxruntime backend: the onnxruntime package is not installed")
    if name == "tensorrt":
        if not cuda:
            raise BackendUnavailable(
                "tensorrt backend needs an NVIDIA GPU (device=cuda); this run is on the CPU"
            )
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailable(
                "tensorrt backend: the tensorrt package is not installed "
                "(pip install 'dfine-bench[tensorrt]')"
            )
        if dtype == "bf16":
            raise BackendUnavailable("tensorrt backend: use dtype fp16 or fp32 (bf16 is not wired up)")


def build_backend(
    adapter: DetectorAdapter,
    backend: Any,
    *,
    device: str,
    work_dir: Path,
    input_size: tuple[int, int],
    max_batch_size: int = 1,
    threads: int | None = None,
) -> BackendRunner:
    """A ``BackendRunner`` for ``backend`` (a ``BackendConfig`` or DictConfig) on ``device``.

    Moves the adapter's model to ``device`` in fp32 (eager fp16/bf16 run on a half-precision
    copy of the export module, so the adapter itself stays fp32 for reference outputs).
    """
    name, dtype = str(C.get(backend, "name", "eager")), str(C.get(backend, "dtype", "fp32"))
    check_backend(name, dtype, device)
    adapter.to(device, torch.float32)
    adapter.eval()
    if name == "eager":
        return _eager(adapter, dtype, device)
    if name == "compile":
        return _compiled(adapter, dtype, device, str(C.get(backend, "compile_mode", "default")))
    onnx_path, exporter = onnx_file(adapter, backend, work_dir=work_dir, input_size=input_size)
    if name == "onnxruntime":
        return _onnxruntime(adapter, backend, dtype, device, onnx_path, exporter, threads)
    return _tensorrt(
        adapter, backend, dtype, device, onnx_path, exporter, input_size, max_batch_size, work_dir
    )


# -- PyTorch ----------------------------------------------------------------------------
def _torch_module(adapter: DetectorAdapter, dtype: str, device: str) -> torch.nn.Module:
    module = adapter.export_module().eval()
    if dtype != "fp32":
        import copy

        module = copy.deepcopy(module).to(device=device, dtype=DTYPES[dtype])
    return module


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out)


def _torch_runner(
    name: str,
    module: Callable[[torch.Tensor], Any],
    dtype: str,
    device: str,
    info: dict[str, Any] | None = None,
) -> BackendRunner:
    """A runner around a PyTorch callable (eager or compiled): inputs cast to ``dtype`` on ``device``."""
    torch_dtype = DTYPES[dtype]

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


def _eager(adapter: DetectorAdapter, dtype: str, device: str) -> BackendRunner:
    return _torch_runner("eager", _torch_module(adapter, dtype, device), dtype, device)


def _compiled(adapter: DetectorAdapter, dtype: str, device: str, mode: str) -> BackendRunner:
    if not _is_cuda(device) and shutil.which("cc") is None and shutil.which("gcc") is None:
        raise BackendUnavailable("compile backend on the CPU needs a C compiler (cc/gcc) for inductor")
    module = _torch_module(adapter, dtype, device)
    try:
        compiled = torch.compile(module, mode=None if mode == "default" else mode)
    except RuntimeError as exc:  # e.g. an unsupported Python version for dynamo
        raise BackendUnavailable(f"torch.compile is not available here: {exc}") from exc
    return _torch_runner("compile", compiled, dtype, device, {"compile_mode": mode})


# -- ONNX -------------------------------------------------------------------------------
def onnx_file(
    adapter: DetectorAdapter, backend: Any, *, work_dir: Path, input_size: tuple[int, int]
) -> tuple[Path, str]:
    """The model's ONNX export (fp32, dynamic batch), reused when it is already in ``work_dir``."""
    opset = int(C.get(backend, "onnx_opset", 17))
    exporters = C.get_list(backend, "onnx_exporters", list(DEFAULT_EXPORTERS))
    h, w = input_size
    path = Path(work_dir) / "onnx" / f"{adapter.spec.name}-{h}x{w}-opset{opset}.onnx"
    marker = path.with_suffix(".exporter")
    if path.is_file() and marker.is_file():
        return path, marker.read_text().strip()
    example = adapter.example_input(1, input_size).to(adapter.device, torch.float32)
    module = adapter.export_module().eval()
    path, exporter = export_onnx(
        module, example, path, opset=opset, output_names=adapter.output_names, exporters=exporters
    )
    marker.write_text(exporter)
    return path, exporter


def _ort_providers(requested: Sequence[str], device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise BackendUnavailable(
                f"onnxruntime: execution provider(s) {', '.join(missing)} not available here "
                f"(available: {', '.join(available)})"
            )
        return list(requested)
    if _is_cuda(device):
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(
                "onnxruntime on CUDA needs the onnxruntime-gpu package (CUDAExecutionProvider is missing; "
                f"available: {', '.join(available)})"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _onnxruntime(
    adapter: DetectorAdapter,
    backend: Any,
    dtype: str,
    device: str,
    onnx_path: Path,
    exporter: str,
    threads: int | None,
) -> BackendRunner:
    import onnxruntime as ort

    providers = _ort_providers(C.get_list(backend, "ort_providers"), device)
    cuda_index = torch.device(device).index or 0
    provider_options: list[dict[str, Any]] = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            opts: dict[str, Any] = {"device_id": cuda_index, "trt_fp16_enable": dtype == "fp16"}
            opts["trt_engine_cache_enable"] = True
            opts["trt_engine_cache_path"] = str(onnx_path.parent / "ort_trt_cache")
            provider_options.append(opts)
        elif p == "CUDAExecutionProvider":
            provider_options.append({"device_id": cuda_index})
        else:
            provider_options.append({})
    if dtype != "fp32" and "TensorrtExecutionProvider" not in providers:
        raise BackendUnavailable(
            f"onnxruntime {dtype}: the ONNX export is fp32; {dtype} needs "
            "backend.ort_providers=[TensorrtExecutionProvider] (fp16) or backend=tensorrt"
        )
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    session = ort.InferenceSession(
        str(onnx_path), sess_options=so, providers=providers, provider_options=provider_options
    )
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    info = {"onnx_file": str(onnx_path), "onnx_exporter": exporter, "providers": session.get_providers()}
    if not _is_cuda(device):

        def prepare_cpu(x: torch.Tensor) -> dict[str, np.ndarray]:
            return {input_name: np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())}

        return BackendRunner(
            name="onnxruntime",
            dtype=dtype,
            device=device,
            prepare=prepare_cpu,
            call=lambda feeds: session.run(output_names, feeds),
            to_torch=lambda outs: tuple(torch.from_numpy(np.asarray(o)).float() for o in outs),
            info=info,
        )

    # On the GPU, bind device memory directly so the timing holds no host<->device copies.
    def prepare_cuda(x: torch.Tensor) -> Any:
        x = x.to(device=device, dtype=torch.float32).contiguous()
        binding = session.io_binding()
        binding.bind_input(input_name, "cuda", cuda_index, np.float32, tuple(x.shape), x.data_ptr())
        for name in output_names:
            binding.bind_output(name, "cuda", cuda_index)
        return binding, x  # keep x alive while the binding points at it

    def call_cuda(prepared: Any) -> Any:
        binding, _ = prepared
        session.run_with_iobinding(binding)
        return binding

    def to_torch_cuda(binding: Any) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(o).float() for o in binding.copy_outputs_to_cpu())

    return BackendRunner(
        name="onnxruntime",
        dtype=dtype,
        device=device,
        prepare=prepare_cuda,
        call=call_cuda,
        to_torch=to_torch_cuda,
        info=info,
    )


# -- TensorRT ---------------------------------------------------------------------------
def _tensorrt(
    adapter: DetectorAdapter,
    backend: Any,
    dtype: str,
    device: str,
    onnx_path: Path,
    exporter: str,
    input_size: tuple[int, int],
    max_batch_size: int,
    work_dir: Path,
) -> BackendRunner:
    from dfine_bench.profiling.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine.build(
        onnx_path,
        fp16=dtype == "fp16",
        workspace_gb=float(C.get(backend, "trt_workspace_gb", 4.0)),
        input_shape=(1, 3, *input_size),
        max_batch_size=max(1, int(max_batch_size)),
        device=device,
        cache_dir=Path(work_dir) / "tensorrt",
    )

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return x.to(device=device, dtype=torch.float32).contiguous()

    return BackendRunner(
        name="tensorrt",
        dtype=dtype,
        device=device,
        prepare=prepare,
        call=engine.infer,
        to_torch=lambda outs: tuple(t.float() for t in outs),
        info={"onnx_file": str(onnx_path), "onnx_exporter": exporter, **engine.describe()},
    )
