"""OpenVINO Runtime on the CPU, from the same ONNX export ONNX Runtime runs, in four precisions.

``pip install 'dfine-bench[openvino]'`` (int8 also needs ``nncf``: ``dfine-bench[precision]``).
``fp32`` pins ``INFERENCE_PRECISION_HINT=f32`` (on CPUs with bf16/AMX units OpenVINO would
otherwise run bf16 by default); ``bf16``/``fp16`` set the hint to ``bf16``/``f16``, and the precision
OpenVINO really runs in (``compiled_model.get_property``) is recorded: a CPU without the units
runs f32, which is a skip with that reason, never an fp32 number under a bf16 label. ``int8`` is
the export quantized by NNCF's post-training quantization (``nncf.quantize``) with calibration
images. ``backend.options.hint`` is OpenVINO's performance hint (LATENCY for batch-1 timing).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dfine_bench.backends._onnx import (
    CALIBRATION_OPTIONS,
    ONNX_FINGERPRINT,
    ONNX_OPTIONS,
    OnnxBackend,
)
from dfine_bench.backends._onnx_precision import PrecisionError
from dfine_bench.backends.base import BackendRunner, BackendSpec, BuildContext, Option
from dfine_bench.backends.registry import register_backend
from dfine_bench.errors import BackendUnavailable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from dfine_bench.adapters.base import DetectorAdapter
    from dfine_bench.backends.base import Calibration

#: backend dtype -> OpenVINO's INFERENCE_PRECISION_HINT (int8: the quantized graph, the rest in f32)
HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}


def nncf_int8(
    onnx_path: Path, calibration: Calibration | None, model_type: str
) -> tuple[Path, dict[str, Any]]:
    """The export quantized by NNCF (written once as OpenVINO IR beside it) and its facts."""
    import hashlib
    import json

    import nncf
    import openvino as ov

    if calibration is None or not calibration.batches:
        raise PrecisionError("openvino int8 needs calibration images (none were given to the backend)")
    settings = {"calibration": dict(calibration.info), "model_type": model_type, "preset": "performance"}
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    out = onnx_path.with_name(f"{onnx_path.stem}-nncf-int8-{tag}.xml")
    if not out.is_file():
        try:
            model = ov.Core().read_model(str(onnx_path))
            data = nncf.Dataset([b.detach().float().numpy() for b in calibration.batches])
            kwargs: dict[str, Any] = {"subset_size": len(calibration.batches)}
            if model_type == "transformer":
                kwargs["model_type"] = nncf.ModelType.TRANSFORMER
            quantized = nncf.quantize(model, data, **kwargs)
            ov.save_model(quantized, str(out), compress_to_fp16=False)
        except Exception as exc:  # NNCF's own errors: a failed cell, with the reason
            raise PrecisionError(f"NNCF int8 quantization failed: {type(exc).__name__}: {exc}") from exc
    size = sum(p.stat().st_size for p in (out, out.with_suffix(".bin")) if p.is_file())
    info = {
        "quantizer": f"nncf {nncf.__version__}",
        "method": "post-training quantization (nncf.quantize, MinMax + FastBiasCorrection)",
        **settings,
        "artifact_mb": round(size / 1e6, 3),
    }
    return out, info


class OpenVINOBackend(OnnxBackend):
    name = "openvino"
    description = "OpenVINO Runtime on the CPU (fp32; bf16/fp16 hint; int8 via NNCF), from the ONNX export"
    packages = ("openvino",)
    install = "pip install 'dfine-bench[openvino]'"
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {"cpu": ("fp32", "fp16", "bf16", "int8")}
    calibrated: ClassVar[tuple[str, ...]] = ("int8",)
    fingerprint_fields: ClassVar[tuple[str, ...]] = ("openvino", *ONNX_FINGERPRINT)
    options: ClassVar[Mapping[str, Option]] = {
        **ONNX_OPTIONS,
        "hint": Option("LATENCY", "OpenVINO performance hint", str, ("LATENCY", "THROUGHPUT")),
        **CALIBRATION_OPTIONS,
        "model_type": Option("transformer", "int8: NNCF's model type", str, ("transformer", "default")),
    }

    def check(self, dtype: str, device: str, options: Mapping[str, Any]) -> None:
        super().check(dtype, device, options)
        if dtype == "int8" and importlib.util.find_spec("nncf") is None:
            raise BackendUnavailable("openvino int8 needs nncf (pip install 'dfine-bench[precision]')")

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        import openvino as ov

        from dfine_bench.backends._torch import host_array, outputs_to_torch

        onnx_path, exporter = self.export_with_exporter(adapter, spec, ctx)
        model_path = onnx_path
        precision_info: dict[str, Any] = {"artifact_mb": round(onnx_path.stat().st_size / 1e6, 3)}
        if spec.dtype == "int8":
            model_path, precision_info = nncf_int8(
                onnx_path, ctx.calibration, str(spec.options["model_type"])
            )
        core = ov.Core()
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": str(spec.options["hint"]),
            "INFERENCE_PRECISION_HINT": HINTS[spec.dtype],
        }
        if ctx.threads:
            config["INFERENCE_NUM_THREADS"] = int(ctx.threads)
        compiled = core.compile_model(core.read_model(str(model_path)), "CPU", config)
        ran = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        if ran != HINTS[spec.dtype]:
            raise BackendUnavailable(
                f"openvino {spec.dtype}: this CPU runs {ran}, not {HINTS[spec.dtype]} "
                "(OpenVINO's INFERENCE_PRECISION_HINT after compiling)"
            )
        request = compiled.create_infer_request()
        outputs = list(compiled.outputs)

        def prepare(*inputs: torch.Tensor) -> dict[int, np.ndarray]:
            return {i: host_array(x) for i, x in enumerate(inputs)}

        def call(feeds: dict[int, np.ndarray]) -> list[np.ndarray]:
            result = request.infer(feeds)
            return [result[o] for o in outputs]

        return BackendRunner(
            name=self.name,
            dtype=spec.dtype,
            device=ctx.device,
            prepare=prepare,
            call=call,
            # infer() returns copies of the outputs (as ONNX Runtime's run does), so no copy here
            to_torch=outputs_to_torch,
            graph=ctx.graph,
            info={
                "onnx_file": str(onnx_path),
                "model_file": str(model_path),
                "onnx_exporter": exporter,
                "onnx_opset": int(spec.options["opset"]),
                "openvino_device": core.get_property("CPU", "FULL_DEVICE_NAME"),
                "performance_hint": str(spec.options["hint"]),
                "inference_precision_requested": HINTS[spec.dtype],
                "inference_precision": ran,
                "num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
                **precision_info,
            },
        )

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        return {"openvino_version": ov.get_version()}


register_backend(OpenVINOBackend())
