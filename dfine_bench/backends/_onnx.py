"""The ONNX export the file-based backends share (ONNX Runtime, TensorRT, OpenVINO).

``OnnxBackend`` is a ``BaseBackend`` whose ``export`` writes the adapter's export module to
``<work_dir>/onnx/<model>-<h>x<w>-opset<N>.onnx`` (fp32, dynamic batch) once and reuses it,
so every file-based backend of a run times the same graph; the deploy graph (the model with its
postprocessor) is ``...-deploy.onnx`` beside it. Its ``opset`` and ``exporters``
options are the ``backend.options`` every such backend takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from dfine_bench.backends.base import GRAPHS, BackendSpec, BaseBackend, BuildContext, Option
from dfine_bench.backends.export.onnx import DEFAULT_EXPORTERS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from dfine_bench.adapters.base import DetectorAdapter

#: what every ONNX-file backend's speed also depends on: how the file was written
ONNX_FINGERPRINT = ("onnx_opset", "onnx_exporter")
ONNX_OPTIONS: dict[str, Option] = {
    "opset": Option(17, "ONNX opset of the export", int),
    "exporters": Option(
        list(DEFAULT_EXPORTERS), "torch.onnx exporters to try, in order", list, DEFAULT_EXPORTERS
    ),
}


#: the options of a backend that quantizes with calibration images (``profiling/precision.py`` makes
#: them: a generated split of ``calibration_images`` images from ``calibration_seed``, refused at
#: start-up when it is the evaluation's split)
CALIBRATION_OPTIONS: dict[str, Option] = {
    "calibration_images": Option(16, "int8: how many calibration images", int),
    "calibration_seed": Option(
        1000, "int8: seed of the generated calibration split (must differ from the evaluation's)", int
    ),
}
KEEP_FP32_OPTION = Option(
    [], "module paths (fnmatch patterns) whose nodes stay fp32 in an fp16/int8 graph", list
)


def onnx_file(
    adapter: DetectorAdapter,
    *,
    work_dir: Path,
    input_size: tuple[int, int],
    opset: int,
    exporters: list[str],
    graph: str = "model",
) -> tuple[Path, str]:
    """The ONNX file of ``graph`` and the exporter that wrote it, reused when already in ``work_dir``.

    ``model``: the adapter's export module (the first of ``exporters`` that works); ``deploy``: the
    model with its top-k postprocessor (``export.deploy``), written by the TorchScript exporter as
    the official deployment script does."""
    import torch

    from dfine_bench.backends.export.deploy import DEPLOY_EXPORTER, export_deploy_onnx
    from dfine_bench.backends.export.onnx import export_onnx

    h, w = input_size
    suffix = "-deploy" if graph == "deploy" else ""
    path = Path(work_dir) / "onnx" / f"{adapter.spec.name}-{h}x{w}-opset{opset}{suffix}.onnx"
    marker = path.with_suffix(".exporter")
    if path.is_file() and marker.is_file():
        return path, marker.read_text().strip()
    if graph == "deploy":
        export_deploy_onnx(adapter, path, input_size=input_size, opset=opset)
        exporter = DEPLOY_EXPORTER
    else:
        example = adapter.example_input(1, input_size).to(adapter.device, torch.float32)
        module = adapter.export_module().eval()
        path, exporter = export_onnx(
            module, example, path, opset=opset, output_names=adapter.output_names, exporters=exporters
        )
    marker.write_text(exporter)
    return path, exporter


class OnnxBackend(BaseBackend):
    """A backend that runs the ONNX export; ``onnx_info`` is what its records say about the file."""

    options: ClassVar[Mapping[str, Option]] = ONNX_OPTIONS
    graphs: ClassVar[tuple[str, ...]] = GRAPHS
    fingerprint_fields: ClassVar[tuple[str, ...]] = ONNX_FINGERPRINT

    def export(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> Path:
        path, _ = self.export_with_exporter(adapter, spec, ctx)
        return path

    def export_with_exporter(
        self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext
    ) -> tuple[Path, str]:
        return onnx_file(
            adapter,
            work_dir=ctx.work_dir,
            input_size=ctx.input_size,
            opset=int(spec.options["opset"]),
            exporters=list(spec.options["exporters"]),
            graph=ctx.graph,
        )
