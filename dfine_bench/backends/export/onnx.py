"""ONNX export of an adapter's ``export_module`` with a dynamic batch axis, and clear failures.

Two exporters exist in torch 2.x: the dynamo-based one (``dynamo=True``, torch's default since
2.9, needs onnxscript) and the TorchScript-based one (``dynamo=False``). ``export_onnx`` tries
them in the order given and, when all fail, raises ``OnnxExportError`` naming the operator the
exporter could not handle (when its message names one) so the record says what to fix.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dfine_bench.errors import DfineBenchError

if TYPE_CHECKING:  # torch is imported when exporting: backend metadata reads this module without it
    import torch

log = logging.getLogger(__name__)

#: Exporter order tried when the config does not pin one. The TorchScript exporter comes first
#: because it exports D-FINE's data-dependent top-k query selection without graph breaks.
DEFAULT_EXPORTERS = ("torchscript", "dynamo")

_OP_PATTERNS = (
    r"(aten::[A-Za-z0-9_.]+)",
    r"(aten\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)",
    r"[Oo]perator ['\"]?([A-Za-z0-9_:.]+)['\"]? (?:is not supported|not supported)",
    r"Unsupported (?:ONNX )?op(?:erator)?:? ['\"]?([A-Za-z0-9_:.]+)",
    r"no symbolic function for ['\"]?([A-Za-z0-9_:.]+)",
)


class OnnxExportError(DfineBenchError):
    """An ONNX export that failed; ``op`` is the operator named in the exporter's error, if any."""

    def __init__(self, message: str, op: str | None = None, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.errors = dict(errors or {})


def failing_op(message: str) -> str | None:
    """The operator an exporter's error message names (``aten::grid_sampler``...), if any."""
    for pattern in _OP_PATTERNS:
        m = re.search(pattern, message)
        if m:
            return m.group(1)
    return None


def _export_one(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    exporter: str,
    opset: int,
    output_names: Sequence[str],
    dynamic_batch: bool,
) -> None:
    import torch

    names = list(output_names)
    if exporter == "dynamo":
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            input_names=["pixel_values"],
            output_names=names,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    elif exporter == "torchscript":
        axes = {"pixel_values": {0: "batch"}, **{n: {0: "batch"} for n in names}} if dynamic_batch else None
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["pixel_values"],
            output_names=names,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    else:
        raise DfineBenchError(f"unknown ONNX exporter {exporter!r}; use 'torchscript' or 'dynamo'")


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    opset: int,
    output_names: Sequence[str],
    exporters: Sequence[str] = DEFAULT_EXPORTERS,
    dynamic_batch: bool = True,
) -> tuple[Path, str]:
    """Export ``module(example)`` to ``path``; returns the path and the exporter that worked.

    The file is checked with ``onnx.checker``. Raises ``OnnxExportError`` when every exporter fails.
    """
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    errors: dict[str, str] = {}
    module = module.eval()
    for exporter in exporters:
        tmp = path.with_suffix(f".{exporter}.tmp.onnx")
        try:
            # the exporters are chatty (warnings, progress prints); keep the run log readable
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
                warnings.simplefilter("ignore")
                _export_one(
                    module,
                    example,
                    tmp,
                    exporter=exporter,
                    opset=opset,
                    output_names=output_names,
                    dynamic_batch=dynamic_batch,
                )
            onnx.checker.check_model(str(tmp))
            tmp.replace(path)
            return path, exporter
        except Exception as exc:  # each exporter fails in its own way; keep every message
            errors[exporter] = f"{type(exc).__name__}: {exc}"
            log.info("ONNX export with the %s exporter failed: %s", exporter, str(exc).splitlines()[:1])
            tmp.unlink(missing_ok=True)
    op = next((o for o in (failing_op(m) for m in errors.values()) if o), None)
    first = {k: re.sub(r"\x1b\[[0-9;]*m", "", v).splitlines()[0][:300] for k, v in errors.items()}
    detail = "; ".join(f"{k}: {v}" for k, v in first.items())
    where = f" at operator {op}" if op else ""
    raise OnnxExportError(
        f"ONNX export failed{where} ({detail}); try another backend.options.opset or backend=eager",
        op=op,
        errors=errors,
    )
