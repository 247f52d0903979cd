"""Reduced-precision ONNX files made from the fp32 export: fp16 (onnxconverter-common) and int8 (ONNX
Runtime's static QDQ quantization), each written once beside the export and reused.

``keep_fp32`` patterns are module paths (``inner.model.decoder.layers.0.encoder_attn``, as eager's
option and the diagnosis name them); the TorchScript exporter names a node after its module scope
(``/inner/model/decoder/layers.0/encoder_attn/MatMul``), so a pattern keeps every node in the scopes
it matches. A conversion or quantization that fails raises ``PrecisionError`` with the reason (a
failed record; the other cells go on).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfine_bench.errors import DfineBenchError

if TYPE_CHECKING:
    from dfine_bench.backends.base import Calibration


class PrecisionError(DfineBenchError):
    """A reduced-precision conversion or quantization that failed (the record keeps the reason)."""


def node_scope_pattern(module_pattern: str) -> str:
    """A module-path pattern as a pattern on node names: ``a.layers.0.b`` -> ``/a/layers.0/b/*``."""
    parts: list[str] = []
    for part in module_pattern.split("."):
        if parts and part.isdigit():
            parts[-1] = f"{parts[-1]}.{part}"
        else:
            parts.append(part)
    return "/" + "/".join(parts) + "/*"


def module_of_node(node_name: str) -> str:
    """The module path of a TorchScript-exported node: ``/a/layers.0/b/MatMul`` -> ``a.layers.0.b``."""
    scope = node_name.strip("/").split("/")[:-1]
    return ".".join(scope)


def matching_nodes(model: Any, patterns: list[str]) -> list[str]:
    """Names of the graph's nodes inside the module scopes ``patterns`` match."""
    globs = [node_scope_pattern(p) for p in patterns]
    return [n.name for n in model.graph.node if any(fnmatch.fnmatchcase(n.name, g) for g in globs)]


def _megabytes(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 3)


def _tag(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _align_casts(model: Any) -> int:
    """The converter retypes a ``Cast(to=float)`` node's output as fp16 but leaves ``to`` at float
    (ONNX Runtime then refuses the graph); cast those to fp16, which is what the graph around them
    now expects. Returns how many were changed."""
    from onnx import TensorProto

    typed = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Cast" or typed.get(node.output[0]) != TensorProto.FLOAT16:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
                changed += 1
    return changed


def fp16_file(onnx_path: Path, keep_fp32: list[str]) -> tuple[Path, dict[str, Any]]:
    """The fp16 copy of ``onnx_path`` (fp32 inputs and outputs, ``keep_io_types``) and its facts."""
    import onnx
    import onnxconverter_common
    from onnxconverter_common import float16

    model = onnx.load(str(onnx_path))
    blocked = matching_nodes(model, keep_fp32)
    settings = {"keep_io_types": True, "node_block_list": blocked}
    out = onnx_path.with_name(f"{onnx_path.stem}-fp16-{_tag(settings)}.onnx")
    info: dict[str, Any] = {
        "converter": f"onnxconverter-common {onnxconverter_common.__version__}",
        "keep_io_types": True,
        "kept_fp32_nodes": len(blocked),
    }
    if not out.is_file():
        try:
            converted = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked)
            _align_casts(converted)
            tmp = out.with_suffix(".tmp.onnx")
            onnx.save(converted, str(tmp))
            tmp.replace(out)
        except Exception as exc:  # the converter's own errors: a failed cell, with the reason
            raise PrecisionError(f"fp16 conversion failed: {type(exc).__name__}: {exc}") from exc
    info["artifact_mb"] = _megabytes(out)
    return out, info


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader``: one feed per calibration batch."""

    def __init__(self, input_name: str, calibration: Calibration) -> None:
        self.feeds = iter([{input_name: b.detach().float().numpy()} for b in calibration.batches])

    def get_next(self) -> dict[str, Any] | None:
        return next(self.feeds, None)


def int8_file(
    onnx_path: Path, calibration: Calibration | None, *, method: str, keep_fp32: list[str]
) -> tuple[Path, dict[str, Any]]:
    """The statically quantized (QDQ: int8 weights per channel, uint8 activations) copy of ``onnx_path``."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if calibration is None or not calibration.batches:
        raise PrecisionError("int8 needs calibration images (none were given to the backend)")
    model = onnx.load(str(onnx_path), load_external_data=False)
    excluded = matching_nodes(model, keep_fp32)
    settings = {
        "format": "QDQ",
        "method": method,
        "per_channel": True,
        "weights": "int8",
        "activations": "uint8",
        "calibration": dict(calibration.info),
        "nodes_excluded": excluded,
    }
    out = onnx_path.with_name(f"{onnx_path.stem}-int8-{_tag(settings)}.onnx")
    info: dict[str, Any] = {
        "quantizer": f"onnxruntime.quantization {onnxruntime.__version__}",
        **{k: v for k, v in settings.items() if k != "nodes_excluded"},
        "kept_fp32_nodes": len(excluded),
    }
    if not out.is_file():
        tmp = out.with_suffix(".tmp.onnx")
        try:
            quantize_static(
                str(onnx_path),
                str(tmp),
                _Reader(model.graph.input[0].name, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                calibrate_method=getattr(CalibrationMethod, method),
                nodes_to_exclude=excluded,
            )
            tmp.replace(out)
        except Exception as exc:  # the quantizer's own errors: a failed cell, with the reason
            tmp.unlink(missing_ok=True)
            raise PrecisionError(f"int8 quantization failed: {type(exc).__name__}: {exc}") from exc
    info["artifact_mb"] = _megabytes(out)
    return out, info
