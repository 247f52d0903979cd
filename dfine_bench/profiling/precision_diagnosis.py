"""Where a reduced precision breaks a model: a layer-by-layer comparison with fp32.

``diagnose_torch`` runs the fp32 export module and its fp16/bf16 copy on the same images with a
forward hook on every module (hooks fire when a module returns, so the order is execution order,
a child before its parent); ``diagnose_onnx`` marks every node output of both ONNX graphs as a
graph output (what Polygraphy's ``--onnx-outputs mark all`` does) and runs both with ONNX Runtime,
in the graph's topological order (Constant nodes left out). Either way, per layer: is the
reduced-precision output finite, its relative error against fp32 (||low - fp32|| / ||fp32||, the
worst over the images), and the fp32 activation range (max |x|)
against the fp16 limit (65504). The ``Diagnosis`` names the first non-finite layer, the first
whose relative error passes the threshold, and the layers whose fp32 range does not fit in fp16.

Layers are named by module path (torch; what ``backend.options.keep_fp32`` takes) or node name
(ONNX; ``module`` gives its module path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dfine_bench.profiling.backends._onnx_precision import module_of_node
from dfine_bench.profiling.backends._torch import keep_fp32, torch_module

if TYPE_CHECKING:
    from pathlib import Path

    from dfine_bench.adapters.base import DetectorAdapter

#: the largest finite fp16 value
FP16_MAX = 65504.0
#: relative error (||low - fp32|| / ||fp32||) above which a layer is called off
DEFAULT_REL_ERROR = 0.1
#: how many layers a diagnosis lists (the worst relative errors, with the culprits)
LISTED_LAYERS = 12


@dataclass(frozen=True)
class LayerStat:
    """One layer's output against fp32 (worst over the diagnosis images)."""

    name: str  # module path (torch, "#k" for its k-th call) or node name (ONNX)
    module: str  # the module path ``keep_fp32`` takes
    finite: bool
    rel_error: float
    fp32_absmax: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("rel_error", "fp32_absmax"):
            v = out[k]
            out[k] = None if not math.isfinite(v) else round(v, 6)
        return out


@dataclass
class Diagnosis:
    """The layer-by-layer comparison of one precision cell with fp32."""

    cell: str
    graph: str  # "torch modules" or "onnx nodes"
    images: int
    rel_threshold: float
    layers_compared: int = 0
    first_nonfinite: LayerStat | None = None
    first_rel_error: LayerStat | None = None
    over_fp16: list[LayerStat] = field(default_factory=list)  # fp32 range > 65504, in order
    worst: list[LayerStat] = field(default_factory=list)
    outputs_finite: bool = True

    @property
    def culprit(self) -> LayerStat | None:
        """The layer to blame: the first non-finite one, else the first past the relative error."""
        return self.first_nonfinite or self.first_rel_error

    def summary(self) -> str:
        if self.first_nonfinite is not None:
            return f"first non-finite output at {self.first_nonfinite.name}"
        if self.first_rel_error is not None:
            s = self.first_rel_error
            return f"first relative error > {self.rel_threshold:g} at {s.name} ({s.rel_error:.3g})"
        return f"no layer non-finite or past relative error {self.rel_threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        def one(s: LayerStat | None) -> dict[str, Any] | None:
            return s.to_dict() if s is not None else None

        return {
            "cell": self.cell,
            "graph": self.graph,
            "images": self.images,
            "rel_threshold": self.rel_threshold,
            "fp16_max": FP16_MAX,
            "layers_compared": self.layers_compared,
            "outputs_finite": self.outputs_finite,
            "first_nonfinite": one(self.first_nonfinite),
            "first_rel_error": one(self.first_rel_error),
            "culprit": one(self.culprit),
            "over_fp16": [s.to_dict() for s in self.over_fp16[:LISTED_LAYERS]],
            "over_fp16_count": len(self.over_fp16),
            "worst": [s.to_dict() for s in self.worst],
            "summary": self.summary(),
        }


class _Acc:
    """Per layer, over images: all finite, worst relative error, largest fp32 magnitude."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.finite: dict[str, bool] = {}
        self.rel: dict[str, float] = {}
        self.absmax: dict[str, float] = {}

    def add(self, name: str, ref: np.ndarray, low: np.ndarray) -> None:
        if name not in self.finite:
            self.order.append(name)
            self.finite[name], self.rel[name], self.absmax[name] = True, 0.0, 0.0
        ref = ref.astype(np.float64, copy=False)
        low = low.astype(np.float64, copy=False)
        ok = bool(np.isfinite(low).all())
        self.finite[name] = self.finite[name] and ok
        ref_finite = np.isfinite(ref)
        peak = float(np.abs(ref[ref_finite]).max(initial=0.0))
        self.absmax[name] = max(self.absmax[name], peak)
        if ok and ref.shape == low.shape and ref.size:
            both = ref_finite & np.isfinite(low)
            # the norm of the difference against the norm of fp32: one outlier element does not
            # dominate it as it would a max-based ratio
            diff = float(np.linalg.norm(ref[both] - low[both]))
            self.rel[name] = max(self.rel[name], diff / max(float(np.linalg.norm(ref[both])), 1e-12))
        elif not ok:
            self.rel[name] = math.inf

    def diagnosis(self, cell: str, graph: str, images: int, rel: float, module: Any) -> Diagnosis:
        stats = [LayerStat(n, module(n), self.finite[n], self.rel[n], self.absmax[n]) for n in self.order]
        d = Diagnosis(cell=cell, graph=graph, images=images, rel_threshold=rel, layers_compared=len(stats))
        d.first_nonfinite = next((s for s in stats if not s.finite), None)
        d.first_rel_error = next((s for s in stats if s.finite and s.rel_error > rel), None)
        d.over_fp16 = [s for s in stats if s.fp32_absmax > FP16_MAX]
        d.worst = sorted((s for s in stats if s.finite), key=lambda s: -s.rel_error)[:LISTED_LAYERS]
        return d


def _first_float(out: Any) -> torch.Tensor | None:
    """The first floating tensor in a module's output (a tensor, tuple, list, dict or HF output)."""
    if isinstance(out, torch.Tensor):
        return out if out.is_floating_point() else None
    items = out.values() if isinstance(out, dict) else out if isinstance(out, tuple | list) else ()
    for o in items:
        t = _first_float(o)
        if t is not None:
            return t
    return None


def _record(module: torch.nn.Module, into: dict[str, np.ndarray]) -> list[Any]:
    """Forward hooks that store every module's first floating output (fp32 numpy) under its path."""
    calls: dict[str, int] = {}
    handles = []
    for name, sub in module.named_modules():
        if not name:
            continue

        def hook(_m: torch.nn.Module, _i: Any, out: Any, name: str = name) -> None:
            t = _first_float(out)
            if t is None:
                return
            k = calls.get(name, 0)
            calls[name] = k + 1
            into[name if k == 0 else f"{name}#{k}"] = t.detach().float().cpu().numpy()

        handles.append(sub.register_forward_hook(hook))
    return handles


def diagnose_torch(
    adapter: DetectorAdapter,
    dtype: str,
    images: Sequence[torch.Tensor],
    *,
    cell: str = "",
    rel_threshold: float = DEFAULT_REL_ERROR,
    kept: Sequence[str] = (),
    reference: torch.nn.Module | None = None,
) -> Diagnosis:
    """Module-by-module comparison of the adapter's export module in ``dtype`` (its ``kept`` modules
    in fp32) with fp32 on ``images`` (preprocessed pixel batches), on the CPU."""
    ref_module = (reference or adapter.export_module()).eval()
    low_module = torch_module(adapter, dtype, "cpu")
    keep_fp32(low_module, list(kept), dtype)
    low_dtype = next(p.dtype for p in low_module.parameters())
    acc = _Acc()
    finite = True
    for x in images:
        ref_out: dict[str, np.ndarray] = {}
        low_out: dict[str, np.ndarray] = {}
        handles = _record(ref_module, ref_out) + _record(low_module, low_out)
        try:
            with torch.inference_mode():
                ref_module(x.float())
                outs = low_module(x.to(low_dtype))
        finally:
            for h in handles:
                h.remove()
        outs = outs if isinstance(outs, tuple | list) else (outs,)
        finite = finite and all(bool(torch.isfinite(o.float()).all()) for o in outs if o.is_floating_point())
        for name, low in low_out.items():  # insertion order: the order modules returned
            if name in ref_out:
                acc.add(name, ref_out[name], low)
    d = acc.diagnosis(cell, "torch modules", len(images), rel_threshold, lambda n: n.split("#")[0])
    d.outputs_finite = finite
    return d


def _all_outputs_model(path: Path) -> tuple[Any, list[str]]:
    """The ONNX model at ``path`` with every node output also a graph output, and those names in order."""
    import onnx

    model = onnx.load(str(path))
    existing = {o.name for o in model.graph.output}
    names = [o for n in model.graph.node for o in n.output if o and o not in existing]
    model.graph.output.extend([onnx.ValueInfoProto(name=n) for n in names])
    compared = [o for n in model.graph.node if n.op_type != "Constant" for o in n.output if o]
    return model, compared


def onnx_outputs(path: Path) -> list[Any]:
    import onnx

    return list(onnx.load(str(path), load_external_data=False).graph.output)


def _producers(path: Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {o: n.name for n in model.graph.node for o in n.output if o}


def _run_all(
    path: Path, feeds: Sequence[np.ndarray]
) -> tuple[list[dict[str, np.ndarray]], list[str], list[str]]:
    """Every node output of ``path`` on each feed, the node outputs in order, the graph's own outputs."""
    import onnxruntime as ort

    model, names = _all_outputs_model(path)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # every node as written
    so.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
    )
    outputs = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    runs = [dict(zip(outputs, session.run(outputs, {input_name: f}), strict=True)) for f in feeds]
    return runs, names, [o.name for o in onnx_outputs(path)]


def diagnose_onnx(
    fp32_path: Path,
    low_path: Path,
    images: Sequence[torch.Tensor],
    *,
    cell: str = "",
    rel_threshold: float = DEFAULT_REL_ERROR,
) -> Diagnosis:
    """Node-by-node comparison of a reduced-precision ONNX file with its fp32 export on ``images``."""
    feeds = [x.detach().float().cpu().numpy() for x in images]
    ref_runs, _, _ = _run_all(fp32_path, feeds)
    low_runs, low_names, graph_outputs = _run_all(low_path, feeds)
    producer = _producers(low_path)
    acc = _Acc()
    finite = True
    for ref, low in zip(ref_runs, low_runs, strict=True):
        for name in low_names:  # topological order of the reduced-precision graph
            a, b = ref.get(name), low.get(name)
            if a is None or b is None or not np.issubdtype(np.asarray(b).dtype, np.floating):
                continue
            acc.add(producer.get(name, name), np.asarray(a), np.asarray(b))
        finals = [np.asarray(low[n]) for n in graph_outputs if n in low]
        finite = finite and all(np.isfinite(v).all() for v in finals if np.issubdtype(v.dtype, np.floating))
    d = acc.diagnosis(cell, "onnx nodes", len(images), rel_threshold, module_of_node)
    d.outputs_finite = finite
    return d
