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

from dfine_bench.backends._onnx_precision import module_of_node
from dfine_bench.backends._torch import keep_fp32, torch_module

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
    repeats: int = 3,
) -> Diagnosis:
    """Module-by-module comparison of the adapter's export module in ``dtype`` (its ``kept`` modules
    in fp32) with fp32 on ``images`` (preprocessed pixel batches), on the CPU; the reduced-precision
    module runs ``repeats`` times per image (a layer non-finite in any pass is non-finite)."""
    ref_module = (reference or adapter.export_module()).eval()
    low_module = torch_module(adapter, dtype, "cpu")
    keep_fp32(low_module, list(kept), dtype)
    low_dtype = next(p.dtype for p in low_module.parameters())
    acc = _Acc()
    finite = True
    for x in images:
        ref_out: dict[str, np.ndarray] = {}
        handles = _record(ref_module, ref_out)
        try:
            with torch.inference_mode():
                ref_module(x.float())
        finally:
            for h in handles:
                h.remove()
        # CPU half-precision kernels are not always deterministic (a NaN in one call of the same
        # input, none in the next, measured on the fixture): every pass counts
        for _ in range(repeats):
            low_out: dict[str, np.ndarray] = {}
            handles = _record(low_module, low_out)
            try:
                with torch.inference_mode():
                    outs = low_module(x.to(low_dtype))
            finally:
                for h in handles:
                    h.remove()
            outs = outs if isinstance(outs, tuple | list) else (outs,)
            finite = finite and all(
                bool(torch.isfinite(o.float()).all()) for o in outs if o.is_floating_point()
            )
            for name, low in low_out.items():  # insertion order: the order modules returned
                if name in ref_out:
                    acc.add(name, ref_out[name], low)
    d = acc.diagnosis(cell, "torch modules", len(images), rel_threshold, lambda n: n.split("#")[0])
    d.outputs_finite = finite
    return d


@dataclass
class _NamedRuns:
    """Every compared intermediate output of one graph on each image, in graph order."""

    runs: list[dict[str, np.ndarray]]
    order: list[str]  # output names, topological order
    op: dict[str, str]  # output name -> producing op type
    node: dict[str, str]  # output name -> producing node name
    finals: list[str]  # the graph's own outputs


def _onnx_runs(path: Path, feeds: Sequence[np.ndarray]) -> _NamedRuns:
    """Every non-Constant node output of the ONNX file at ``path`` marked as a graph output (what
    Polygraphy's ``--onnx-outputs mark all`` does), run by ONNX Runtime with no graph rewrites."""
    import onnx

    model = onnx.load(str(path))
    finals = [o.name for o in model.graph.output]
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    order = [o for n in nodes for o in n.output if o and o not in finals]
    model.graph.output.extend([onnx.ValueInfoProto(name=n) for n in order])
    runs = _run_every_output(model.SerializeToString(), feeds)
    op, node = _producers(nodes)
    return _NamedRuns(runs, order + finals, op, node, finals)


def _producers(nodes: Sequence[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """For each named output of ``nodes`` (ONNX ``NodeProto``): the op type and the node name."""
    op = {o: n.op_type for n in nodes for o in n.output if o}
    node = {o: n.name for n in nodes for o in n.output if o}
    return op, node


def _run_every_output(serialized: bytes, feeds: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Each feed through the serialized ONNX model on the CPU, every graph output by name."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # every node as written
    so.log_severity_level = 3
    session = ort.InferenceSession(serialized, sess_options=so, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    return [dict(zip(outputs, session.run(outputs, {input_name: f}), strict=True)) for f in feeds]


def _openvino_runs(path: Path, hint: str, feeds: Sequence[np.ndarray]) -> _NamedRuns:
    """Every operation's output of the OpenVINO model at ``path`` added as a model output, compiled
    for the CPU with ``INFERENCE_PRECISION_HINT=hint``."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    finals = [r.get_friendly_name() for r in model.get_results()]
    skip = {"Constant", "Parameter", "Result", "FakeQuantize", "Convert"}
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() not in skip]
    ports = [(op, i) for op in ops for i in range(op.get_output_size())]
    names = [op.get_friendly_name() + (f":{i}" if i else "") for op, i in ports]
    model.add_outputs([op.output(i) for op, i in ports])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    outs = list(compiled.outputs)[-len(ports) :]
    runs = []
    for f in feeds:
        result = compiled.create_infer_request().infer({0: f})
        runs.append({n: np.asarray(result[o]) for n, o in zip(names, outs, strict=True)})
    op = {n: p.get_type_name() for n, (p, _) in zip(names, ports, strict=True)}
    return _NamedRuns(runs, names, op, {n: n.split(":")[0] for n in names}, finals)


def _compare(ref: _NamedRuns, low: _NamedRuns, cell: str, graph: str, rel: float) -> Diagnosis:
    """Outputs both graphs have, made by the same kind of op (a rewrite that renamed a tensor, as
    the quantizer's Conv+Relu fusion does, is not compared), in the reduced-precision graph's order."""
    acc = _Acc()
    finite = True
    for a, b in zip(ref.runs, low.runs, strict=True):
        for name in low.order:
            x, y = a.get(name), b.get(name)
            if x is None or y is None or ref.op.get(name) != low.op.get(name):
                continue
            if not np.issubdtype(y.dtype, np.floating) or x.shape != y.shape:
                continue
            acc.add(low.node.get(name, name), x, y)
        finals = [b[n] for n in low.finals if n in b and np.issubdtype(b[n].dtype, np.floating)]
        finite = finite and all(bool(np.isfinite(v).all()) for v in finals)
    d = acc.diagnosis(cell, graph, len(ref.runs), rel, module_of_node)
    d.outputs_finite = finite
    return d


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
    return _compare(
        _onnx_runs(fp32_path, feeds), _onnx_runs(low_path, feeds), cell, "onnx nodes", rel_threshold
    )


def diagnose_openvino(
    fp32_path: Path,
    low_path: Path,
    hint: str,
    images: Sequence[torch.Tensor],
    *,
    cell: str = "",
    rel_threshold: float = DEFAULT_REL_ERROR,
) -> Diagnosis:
    """Operation-by-operation comparison of an OpenVINO cell (its model file, compiled with ``hint``)
    with the fp32 export compiled in f32, on ``images``."""
    feeds = [x.detach().float().cpu().numpy() for x in images]
    ref = _openvino_runs(fp32_path, "f32", feeds)
    low = _openvino_runs(low_path, hint, feeds)
    return _compare(ref, low, cell, "openvino operations", rel_threshold)
