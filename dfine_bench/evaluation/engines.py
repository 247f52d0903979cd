"""The two COCO engines behind one call: faster-coco-eval (default) and pycocotools (reference).

Both engines modify the detection dicts handed to them (``loadRes`` adds ``area``, ``id``
and more), so each run gets its own copy: the same predictions can go to both engines and
give the same numbers. Callers validate detections first (``predictions.validate_detections``):
the engines silently drop unknown ids and pycocotools accepts NaN scores, both of which
would change AP without a word.

The standard caps apply unchanged (maxDets 1/10/100, which caps detections per image
*per category*); nothing here re-caps or thresholds detections.

``matching=True`` also keeps COCOeval's per-image matching (area all, maxDets 100) for the AP
bootstrap (``bootstrap.py``). pycocotools exposes it (``evalImgs``), so with that engine it is the
evaluation's own; faster-coco-eval keeps it in C++ only, so with that engine one extra pycocotools
``evaluate()`` restricted to area all and maxDets 100 computes it (no ``accumulate``).
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfine_bench.errors import ConfigError, DatasetError
from dfine_bench.evaluation.bootstrap import MAX_DETS, ImageMatching, matching_from_cocoeval
from dfine_bench.records.metrics import COCO_STATS

ENGINES = ("faster_coco_eval", "pycocotools")


@dataclass
class CocoResult:
    """What one engine run yields. ``stats`` are COCO's 12 in [0, 1]; -1 where undefined."""

    engine: str
    stats: dict[str, float]
    per_category_ap: dict[int, float]  # category id -> AP (IoU .50:.95, all areas, 100 dets); -1 undefined
    pr_recall: list[float]
    pr_precision: list[float | None]
    extended: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    matching: ImageMatching | None = None  # with ``run_engine(matching=True)``


def _copy_detections(detections: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    # A shallow copy per dict plus a fresh bbox list: all the engines ever write into.
    return [{**d, "bbox": list(d["bbox"])} for d in detections]


def _pr_curve(precision: np.ndarray, rec_thrs: np.ndarray) -> tuple[list[float], list[float | None]]:
    """Precision at each recall threshold, IoU .50:.95 and categories averaged (area all, maxDets 100)."""
    p = precision[:, :, :, 0, -1]  # T x R x K
    valid = p > -1
    counts = valid.sum(axis=(0, 2))
    sums = np.where(valid, p, 0.0).sum(axis=(0, 2))
    curve = [float(s / c) if c else None for s, c in zip(sums, counts)]
    return [float(r) for r in rec_thrs], curve


def _per_category(precision: np.ndarray, cat_ids: Sequence[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for k, cid in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        out[int(cid)] = float(p.mean()) if p.size else -1.0
    return out


def run_engine(
    annotations: Path,
    detections: Sequence[dict[str, Any]],
    *,
    engine: str = "faster_coco_eval",
    image_ids: Sequence[int] | None = None,
    copy_input: bool = True,
    matching: bool = False,
) -> CocoResult:
    """Evaluate ``detections`` (COCO results dicts, already validated) against ``annotations``.

    ``image_ids`` restricts the evaluation to those images (a subset, or all but failed ones);
    None evaluates every image of the annotation file, as COCO's own tools do.
    ``copy_input=False`` hands the dicts over as they are (the caller will not use them again),
    saving a copy of every detection. ``matching=True`` fills ``CocoResult.matching``.
    """
    if engine not in ENGINES:
        raise ConfigError(f"evaluation.engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not detections:
        # pycocotools crashes on an empty list and faster-coco-eval returns zeros: neither is a clear answer.
        raise DatasetError("no detections to evaluate: the predictions are empty")
    dets = _copy_detections(detections) if copy_input else list(detections)
    start = time.perf_counter()
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # both engines print progress to stdout
        if engine == "faster_coco_eval":
            from faster_coco_eval import COCO, COCOeval_faster

            gt = COCO(str(annotations))
            dt = gt.loadRes(dets)
            ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
        else:
            from pycocotools.coco import COCO as PyCOCO
            from pycocotools.cocoeval import COCOeval

            gt = PyCOCO(str(annotations))
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, "bbox")
        if image_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        kept = _matching(ev, annotations, dets, image_ids, engine) if matching else None
    seconds = time.perf_counter() - start
    stats = {name: float(v) for name, v in zip(COCO_STATS, list(ev.stats)[: len(COCO_STATS)])}
    precision = np.asarray(ev.eval["precision"])
    recall, curve = _pr_curve(precision, np.asarray(ev.params.recThrs))
    extended: dict[str, float] = {}
    if engine == "faster_coco_eval":
        # AR at IoU .50 and .75: computed by faster-coco-eval alongside the standard stats, free.
        for label in ("AR_50", "AR_75"):
            value = ev.stats_as_dict.get(label)
            if value is not None and math.isfinite(value):
                extended[label.replace("_", "")] = float(value)
    return CocoResult(
        engine=engine,
        stats=stats,
        per_category_ap=_per_category(precision, list(ev.params.catIds)),
        pr_recall=recall,
        pr_precision=curve,
        extended=extended,
        seconds=seconds,
        matching=kept,
    )


def _matching(
    ev: Any, annotations: Path, dets: list[dict[str, Any]], image_ids: Sequence[int] | None, engine: str
) -> ImageMatching:
    """The per-image matching: pycocotools' own ``evalImgs``, or one pycocotools ``evaluate()``
    (area all, maxDets 100 only) where faster-coco-eval ran."""
    if engine == "pycocotools":
        return matching_from_cocoeval(ev)
    from pycocotools.coco import COCO as PyCOCO
    from pycocotools.cocoeval import COCOeval

    gt = PyCOCO(str(annotations))
    # loadRes rewrites each detection's id and area: the dicts are the engine's copies already
    mev = COCOeval(gt, gt.loadRes(dets), "bbox")
    if image_ids is not None:
        mev.params.imgIds = sorted(int(i) for i in image_ids)
    mev.params.areaRng, mev.params.areaRngLbl = [[0**2, 1e5**2]], ["all"]  # COCO's 'all'
    mev.params.maxDets = [MAX_DETS]
    mev.evaluate()
    return matching_from_cocoeval(mev)
