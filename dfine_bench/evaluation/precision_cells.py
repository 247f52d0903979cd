"""After an evaluation through several precisions: diagnose the cells that broke, and verify a fix.

A reduced-precision cell (an ``evaluation.backends`` entry whose dtype is not fp32) *fails* when
its AP is more than ``MAX_DELTA_AP`` (1.0) below eager fp32's, when its evaluation failed, or
when its outputs were non-finite on an evaluated image (``details.backend_info.nonfinite_images``).
For each failing cell:

1. ``diagnose``: a layer-by-layer comparison with fp32 on a few images of the calibration split
   (disjoint from the evaluated ones; images whose outputs are non-finite first):
   torch modules for eager, ONNX nodes for ONNX Runtime, OpenVINO operations for OpenVINO
   (``profiling/precision_diagnosis.py``).
   For eager, a non-finite culprit (and its counterparts in the other repeated blocks,
   ``counterparts``) is kept in fp32 and the comparison repeated (up to ``MAX_ROUNDS``), so every
   layer that breaks is found, not only the first.
2. ``fix``: when the backend takes ``backend.options.keep_fp32``, one extra evaluation of the cell
   with the diagnosed modules kept in fp32 (record key ``<key>+keep_fp32``), and whether that
   restores the AP to within ``max_delta_ap`` of fp32.

Each diagnosis is one ``precision_diagnosis`` record (details: the culprit's module or node path,
the first non-finite layer, the first past the relative error, layers whose fp32 range passes
65504, and the fix's AP). Nothing here runs when every evaluated cell is fp32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import re
from pathlib import Path
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.backends import BackendSpec, build_backend, get_backend
from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.errors import BackendUnavailable
from dfine_bench.evaluation.inference_backend import resolve_eval_backends
from dfine_bench.evaluation.loop import evaluate_model
from dfine_bench.profiling.precision import calibration_for, diagnosis_images
from dfine_bench.profiling.precision_diagnosis import (
    DEFAULT_REL_ERROR,
    Diagnosis,
    diagnose_onnx,
    diagnose_openvino,
    diagnose_torch,
)
from dfine_bench.records.schema import TaskOutcome

log = logging.getLogger(__name__)

TASK = "precision_diagnosis"
#: a cell losing more AP than this against eager fp32 is diagnosed
MAX_DELTA_AP = 1.0
#: diagnosis images (of the calibration split)
DIAGNOSIS_IMAGES = 6
#: eager: how many non-finite layers are looked for, one after the other
MAX_ROUNDS = 5
FIX_SUFFIX = "+keep_fp32"


def _ap(o: TaskOutcome) -> float | None:
    m = o.metrics.get("AP")
    v = getattr(m, "value", m)
    return float(v) if isinstance(v, int | float) and o.status == "ok" else None


def _cells(outcomes: list[TaskOutcome]) -> tuple[TaskOutcome | None, list[TaskOutcome]]:
    """The reference (eager fp32) COCO outcome and the reduced-precision ones."""
    coco = [o for o in outcomes if o.task == "evaluation"]
    ref = next((o for o in coco if "backend" not in o.setup), None)
    cells = [o for o in coco if o.setup.get("dtype", "fp32") != "fp32"]
    return ref, cells


def counterparts(module: str) -> str:
    """The diagnosed module and its counterparts in the other repeated blocks: the layer index
    becomes a wildcard (``decoder.layers.0.encoder_attn`` -> ``decoder.layers.*.encoder_attn``).
    The same module of another decoder layer runs the same ops on the same kind of input, and
    CPU half-precision NaNs are not deterministic, so one layer is seen failing where all can."""
    return re.sub(r"\.\d+(?=\.|$)", ".*", module)


def _finite(runner: Any, images: list[torch.Tensor]) -> tuple[bool, list[int]]:
    """Whether the runner's outputs are finite on every image, and the images where they are not."""
    bad = []
    for i, x in enumerate(images):
        outs = runner(x)
        if not all(bool(torch.isfinite(o).all()) for o in outs if o.is_floating_point()):
            bad.append(i)
    return not bad, bad


def _diagnose(
    adapter: DetectorAdapter, spec: BackendSpec, runner: Any, images: list[torch.Tensor]
) -> tuple[Diagnosis | None, list[str], str | None]:
    """The diagnosis of one cell, the modules to keep in fp32, or why there is none."""
    if spec.name == "eager":
        kept: list[str] = []
        d = diagnose_torch(adapter, spec.dtype, images, cell=spec.key, rel_threshold=DEFAULT_REL_ERROR)
        first = d
        for _ in range(MAX_ROUNDS - 1):
            if d.first_nonfinite is None:
                break
            kept.append(counterparts(d.first_nonfinite.module))
            d = diagnose_torch(adapter, spec.dtype, images, cell=spec.key, kept=kept)
        if not kept and first.culprit is not None:
            kept = [counterparts(first.culprit.module)]
        return first, list(dict.fromkeys(kept)), None
    info = runner.info
    if spec.name == "openvino" and "model_file" in info:
        hint = str(info.get("inference_precision", "f32"))
        d = diagnose_openvino(Path(info["onnx_file"]), Path(info["model_file"]), hint, images, cell=spec.key)
        return d, [d.culprit.module] if d.culprit is not None and d.culprit.module else [], None
    if "export_file" in info and "onnx_file" in info:
        d = diagnose_onnx(Path(info["export_file"]), Path(info["onnx_file"]), images, cell=spec.key)
        return d, [d.culprit.module] if d.culprit is not None and d.culprit.module else [], None
    return (
        None,
        [],
        (
            f"{spec.name} exposes no per-layer outputs here; the layer-by-layer comparison runs on torch "
            "modules (eager) and ONNX nodes (onnxruntime)"
        ),
    )


def _fix(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationSettings,
    spec: BackendSpec,
    kept: list[str],
    *,
    work_dir: Path,
    artifacts_dir: Path,
    device: str,
    progress: str | bool,
) -> list[TaskOutcome]:
    """The cell evaluated again with ``kept`` in fp32, its records keyed ``<key>+keep_fp32``."""
    fixed = dataclasses.replace(spec, options={**spec.options, "keep_fp32": list(kept)})
    one = dataclasses.replace(cfg, backends=(spec.key,), evaluators=("coco",))
    got = evaluate_model(
        adapter,
        dataset,
        one,
        # the kept modules in the folder name: a resumed run never reuses another fix's detections
        work_dir / f"{spec.key}{FIX_SUFFIX}-{hashlib.sha256(repr(sorted(kept)).encode()).hexdigest()[:8]}",
        device=device,
        progress=progress,
        backends=[fixed],
        artifacts_dir=artifacts_dir,
    )
    for o in got:
        o.key = f"{o.key}{FIX_SUFFIX}"
        o.setup.setdefault("extra", {})["keep_fp32"] = list(kept)
        o.notes.append(f"{spec.key} with {', '.join(kept)} kept in fp32 (the diagnosed layers)")
    return got


def diagnose_cells(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationSettings,
    outcomes: list[TaskOutcome],
    *,
    backends: list[BackendSpec],
    work_dir: Path,
    artifacts_dir: Path,
    device: str = "cpu",
    progress: str | bool = "auto",
) -> list[TaskOutcome]:
    """The ``precision_diagnosis`` outcomes (and fix evaluations) of the failing cells of ``outcomes``."""
    ref, cells = _cells(outcomes)
    if ref is None or not cells:
        return []
    ref_ap = _ap(ref)
    specs = {b.key: b.spec for b in resolve_eval_backends(cfg, backends)}
    out: list[TaskOutcome] = []
    images: list[torch.Tensor] | None = None
    for cell in cells:
        spec = specs.get(f"{cell.setup.get('backend')}-{cell.setup.get('dtype')}")
        if spec is None or cell.status == "skipped":  # a cell that could not run here has nothing to diagnose
            continue
        if images is None:
            images = diagnosis_images(adapter, artifacts_dir)
        try:
            out += _one_cell(
                adapter, dataset, cfg, cell, spec, ref_ap, images, work_dir, artifacts_dir, device, progress
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except BackendUnavailable as exc:
            out.append(_outcome(spec, status="skipped", reason=str(exc)))
        except Exception as exc:  # one cell's diagnosis failing must not lose the others
            log.exception("diagnosis of %s failed", spec.key)
            out.append(_outcome(spec, status="failed", reason=f"{type(exc).__name__}: {exc}"))
    return out


def _outcome(spec: BackendSpec, **kw: Any) -> TaskOutcome:
    return TaskOutcome(task=TASK, key=spec.key, setup={"backend": spec.name, "dtype": spec.dtype}, **kw)


def _one_cell(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationSettings,
    cell: TaskOutcome,
    spec: BackendSpec,
    ref_ap: float | None,
    images: list[torch.Tensor],
    work_dir: Path,
    artifacts_dir: Path,
    device: str,
    progress: str | bool,
) -> list[TaskOutcome]:
    ap = _ap(cell)
    delta = ap - ref_ap if ap is not None and ref_ap is not None else None
    triggers = _triggers(cell, delta)
    details: dict[str, Any] = {"AP": ap, "delta_ap": delta, "max_delta_ap": MAX_DELTA_AP}
    if not triggers:
        return [
            _outcome(spec, details={**details, "diagnosed": False}, notes=["within tolerance: not diagnosed"])
        ]
    runner = build_backend(
        adapter,
        spec,
        device="cpu",
        work_dir=artifacts_dir,
        input_size=tuple(adapter.spec.input_size),  # type: ignore[arg-type]
        calibration=calibration_for(adapter, spec, artifacts_dir),
    )
    finite, bad = _finite(runner, images)
    details["outputs_finite"] = finite
    if not finite:
        triggers.append(f"non-finite outputs on {len(bad)} of {len(images)} calibration images")
    diagnosis, kept, why_not = _diagnose(adapter, spec, runner, _failing_first(images, bad))
    details |= {"diagnosed": True, "triggers": triggers}
    if diagnosis is None:
        return [_outcome(spec, details=details, status="skipped", reason=why_not)]
    details |= diagnosis.to_dict()
    out: list[TaskOutcome] = []
    if kept and "keep_fp32" in get_backend(spec.name).options:
        out = _fix(
            adapter,
            dataset,
            cfg,
            spec,
            kept,
            work_dir=work_dir,
            artifacts_dir=artifacts_dir,
            device=device,
            progress=progress,
        )
        details["fix"] = _fix_summary(out, kept, ref_ap, cell.key)
    elif kept:
        details["fix"] = {
            "keep_fp32": kept,
            "AP": None,
            "restored": False,
            "note": f"{spec.name} takes no keep_fp32",
        }
    return [_outcome(spec, details=details, notes=[diagnosis.summary()]), *out]


def _triggers(cell: TaskOutcome, delta: float | None) -> list[str]:
    """Why an evaluated cell is diagnosed (empty: it is within tolerance)."""
    info = cell.details.get("backend_info") or {}
    nonfinite = int(info.get("nonfinite_images") or 0) if isinstance(info, dict) else 0
    triggers = []
    if cell.status != "ok":
        triggers.append(f"evaluation {cell.status}")
    if delta is not None and (delta < -MAX_DELTA_AP or math.isnan(delta)):
        triggers.append(f"ΔAP {delta:+.2f} < -{MAX_DELTA_AP:g}")
    if nonfinite:
        triggers.append(f"non-finite outputs on {nonfinite} evaluated image(s)")
    return triggers


def _failing_first(images: list[torch.Tensor], bad: list[int]) -> list[torch.Tensor]:
    """The diagnosis images: those whose outputs were non-finite first (the diagnosis compares
    what breaks), then the others, ``DIAGNOSIS_IMAGES`` in all."""
    order = bad + [i for i in range(len(images)) if i not in bad]
    return [images[i] for i in order[:DIAGNOSIS_IMAGES]]


def _fix_summary(
    fix: list[TaskOutcome], kept: list[str], ref_ap: float | None, cell_key: str
) -> dict[str, Any]:
    """The ``fix`` details of a diagnosis: the fix evaluation's AP and whether it restores fp32's."""
    fix_ap = next((_ap(o) for o in fix if o.task == "evaluation"), None)
    restored = fix_ap is not None and ref_ap is not None and fix_ap >= ref_ap - MAX_DELTA_AP
    return {
        "keep_fp32": kept,
        "AP": fix_ap,
        "delta_ap": fix_ap - ref_ap if fix_ap is not None and ref_ap is not None else None,
        "restored": restored,
        "record_key": f"{cell_key}{FIX_SUFFIX}",
    }
