"""OpenVINO Runtime on the CPU, fp32, from the same ONNX export ONNX Runtime runs.

``pip install 'dfine-bench[openvino]'``. Inference precision is pinned to f32: on CPUs with
bf16/AMX units OpenVINO would otherwise run bf16 by default, and this backend is fp32.
``backend.options.hint`` is OpenVINO's performance hint (LATENCY for batch-1 timing, the default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dfine_bench.profiling.backends._onnx import ONNX_FINGERPRINT, ONNX_OPTIONS, OnnxBackend
from dfine_bench.profiling.backends.base import BackendRunner, BackendSpec, BuildContext, Option
from dfine_bench.profiling.backends.registry import register_backend

if TYPE_CHECKING:
    import numpy as np
    import torch

    from dfine_bench.adapters.base import DetectorAdapter


class OpenVINOBackend(OnnxBackend):
    name = "openvino"
    description = "OpenVINO Runtime on the CPU (fp32), from the ONNX export"
    packages = ("openvino",)
    install = "pip install 'dfine-bench[openvino]'"
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {"cpu": ("fp32",)}
    fingerprint_fields: ClassVar[tuple[str, ...]] = ("openvino", *ONNX_FINGERPRINT)
    options: ClassVar[Mapping[str, Option]] = {
        **ONNX_OPTIONS,
        "hint": Option("LATENCY", "OpenVINO performance hint", str, ("LATENCY", "THROUGHPUT")),
    }

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        import openvino as ov

        from dfine_bench.profiling.backends._torch import host_array, outputs_to_torch

        onnx_path, exporter = self.export_with_exporter(adapter, spec, ctx)
        core = ov.Core()
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": str(spec.options["hint"]),
            "INFERENCE_PRECISION_HINT": "f32",
        }
        if ctx.threads:
            config["INFERENCE_NUM_THREADS"] = int(ctx.threads)
        compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
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
                "onnx_exporter": exporter,
                "openvino_device": core.get_property("CPU", "FULL_DEVICE_NAME"),
                "performance_hint": str(spec.options["hint"]),
                "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
                "num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            },
        )

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        return {"openvino_version": ov.get_version()}


register_backend(OpenVINOBackend())
