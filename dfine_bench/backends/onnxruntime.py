"""ONNX Runtime on the ONNX export: CPU; the CUDA and TensorRT execution providers where installed.

On the CPU, ``fp16`` runs the export converted by onnxconverter-common (fp32 inputs and outputs)
and ``int8`` the export statically quantized (QDQ) on calibration images from a split disjoint
from the evaluation's (``_onnx_precision.py``); ``keep_fp32`` keeps named modules' nodes in fp32.

``backend.options.providers`` pins the execution providers (empty: the best this device has).
On the GPU the input and outputs are bound to device memory, so the timing holds no copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dfine_bench.backends._onnx import (
    CALIBRATION_OPTIONS,
    KEEP_FP32_OPTION,
    ONNX_FINGERPRINT,
    ONNX_OPTIONS,
    OnnxBackend,
)
from dfine_bench.backends._onnx_precision import PrecisionError, fp16_file, int8_file
from dfine_bench.backends.base import BackendRunner, BackendSpec, BuildContext, Option
from dfine_bench.backends.registry import register_backend
from dfine_bench.errors import BackendUnavailable

if TYPE_CHECKING:
    import torch

    from dfine_bench.adapters.base import DetectorAdapter


def _providers(requested: Sequence[str], cuda: bool) -> list[str]:
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
    if cuda:
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(
                "onnxruntime on CUDA needs the onnxruntime-gpu package (CUDAExecutionProvider is missing; "
                f"available: {', '.join(available)})"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _provider_options(providers: list[str], dtype: str, cuda_index: int, cache: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            out.append(
                {
                    "device_id": cuda_index,
                    "trt_fp16_enable": dtype in ("fp16", "int8"),  # int8: the layers left unquantized
                    "trt_int8_enable": dtype == "int8",  # the QDQ graph's explicit quantization
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                }
            )
        elif p == "CUDAExecutionProvider":
            out.append({"device_id": cuda_index})
        else:
            out.append({})
    return out


class OnnxRuntimeBackend(OnnxBackend):
    name = "onnxruntime"
    description = "ONNX Runtime on the ONNX export (CPU; CUDA/TensorRT execution providers when present)"
    packages = ("onnxruntime",)
    install = "pip install onnxruntime (onnxruntime-gpu for CUDA)"
    # CPU: fp16 is the export converted by onnxconverter-common, int8 statically quantized (QDQ);
    # CUDA: fp16 and int8 (the same QDQ graph) only through the TensorRT execution provider
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "cpu": ("fp32", "fp16", "int8"),
        "cuda": ("fp32", "fp16", "int8"),
    }
    calibrated: ClassVar[tuple[str, ...]] = ("int8",)
    fingerprint_fields: ClassVar[tuple[str, ...]] = ("onnxruntime", "providers", *ONNX_FINGERPRINT)
    options: ClassVar[Mapping[str, Option]] = {
        **ONNX_OPTIONS,
        "providers": Option([], "execution providers in order; empty: the best this device has", list),
        **CALIBRATION_OPTIONS,
        "calibration_method": Option(
            "MinMax", "int8: how activation ranges are calibrated", str, ("MinMax", "Entropy", "Percentile")
        ),
        "keep_fp32": KEEP_FP32_OPTION,
    }

    def precision_file(
        self, onnx_path: Path, spec: BackendSpec, ctx: BuildContext
    ) -> tuple[Path, dict[str, Any]]:
        """The file a CPU session of ``spec.dtype`` runs: the export itself, or its fp16/int8 copy."""
        keep = list(spec.options.get("keep_fp32") or [])
        if spec.dtype == "fp16":
            return fp16_file(onnx_path, keep)
        if spec.dtype == "int8":
            method = str(spec.options["calibration_method"])
            return int8_file(onnx_path, ctx.calibration, method=method, keep_fp32=keep)
        return onnx_path, {"artifact_mb": round(onnx_path.stat().st_size / 1e6, 3)}

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        import numpy as np
        import onnxruntime as ort
        import torch

        from dfine_bench.backends._torch import host_array, outputs_to_torch

        onnx_path, exporter = self.export_with_exporter(adapter, spec, ctx)
        cuda = torch.device(ctx.device).type == "cuda"
        providers = _providers(list(spec.options["providers"]), cuda)
        precision_info: dict[str, Any] = {"export_file": str(onnx_path)}
        if cuda and spec.dtype != "fp32" and "TensorrtExecutionProvider" not in providers:
            raise BackendUnavailable(
                f"onnxruntime {spec.dtype} on CUDA runs through TensorRT: "
                "backend.options.providers=[TensorrtExecutionProvider] (or backend=tensorrt for fp16)"
            )
        if not cuda or spec.dtype == "int8":  # CUDA fp16: TensorRT builds it from the fp32 export
            onnx_path, more = self.precision_file(onnx_path, spec, ctx)
            precision_info.update(more)
        cuda_index = torch.device(ctx.device).index or 0
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if ctx.threads:
            so.intra_op_num_threads = int(ctx.threads)
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(onnx_path),
                sess_options=so,
                providers=providers,
                provider_options=_provider_options(
                    providers, spec.dtype, cuda_index, onnx_path.parent / "ort_trt_cache"
                ),
            )
        except Exception as exc:  # e.g. an op without a kernel in this precision: a failed cell
            raise PrecisionError(
                f"onnxruntime {spec.dtype}: the session could not be made: {type(exc).__name__}: "
                + str(exc).splitlines()[0][:300]
            ) from exc
        input_names = [i.name for i in session.get_inputs()]
        output_names = [o.name for o in session.get_outputs()]
        info = {
            "onnx_file": str(onnx_path),
            "onnx_exporter": exporter,
            "onnx_opset": int(spec.options["opset"]),
            "providers": session.get_providers(),
            **precision_info,
        }
        if not cuda:

            def prepare_cpu(*inputs: torch.Tensor) -> dict[str, np.ndarray]:
                return {n: host_array(x) for n, x in zip(input_names, inputs, strict=True)}

            return BackendRunner(
                name=self.name,
                dtype=spec.dtype,
                device=ctx.device,
                prepare=prepare_cpu,
                call=lambda feeds: session.run(output_names, feeds),
                to_torch=outputs_to_torch,
                info=info,
                graph=ctx.graph,
            )

        def prepare_cuda(*inputs: torch.Tensor) -> Any:
            on_device = [
                (
                    x.to(device=ctx.device, dtype=torch.float32)
                    if x.is_floating_point()
                    else x.to(ctx.device)
                ).contiguous()
                for x in inputs
            ]
            binding = session.io_binding()
            for name, x in zip(input_names, on_device, strict=True):
                np_dtype = np.float32 if x.is_floating_point() else np.int64
                binding.bind_input(name, "cuda", cuda_index, np_dtype, tuple(x.shape), x.data_ptr())
            for name in output_names:
                binding.bind_output(name, "cuda", cuda_index)
            return binding, on_device  # keep the inputs alive while the binding points at them

        def call_cuda(prepared: Any) -> Any:
            binding, _ = prepared
            session.run_with_iobinding(binding)
            return binding

        return BackendRunner(
            name=self.name,
            dtype=spec.dtype,
            device=ctx.device,
            prepare=prepare_cuda,
            call=call_cuda,
            to_torch=lambda binding: outputs_to_torch(binding.copy_outputs_to_cpu()),
            info=info,
            graph=ctx.graph,
        )

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"onnxruntime_version": ort.__version__}


register_backend(OnnxRuntimeBackend())
