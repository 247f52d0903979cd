"""Held-out accuracy of one ablation run: COCO AP, AP50, AP75 and AP at IoU 0.9.

The in-memory adapter goes through the ordinary evaluation path (``evaluate_model``); AP at IoU
0.9, where a better localization shows first and which the COCO summary does not print, is read
from the same evaluation's precision array.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from pathlib import Path
from typing import Any

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.evaluation.loop import evaluate_model
from dfine_bench.evaluation.predictions import MERGED_FILE


def ap_at_iou(annotations: Path, predictions: Path, iou: float) -> float:
    """COCO AP (percent, all areas, 100 detections) at one IoU threshold of the standard ten."""
    import numpy as np
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        ev = COCOeval_faster(gt, gt.loadRes(str(predictions)), "bbox", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
    thresholds = np.asarray(ev.params.iouThrs)
    t = int(np.argmin(np.abs(thresholds - iou)))
    p = np.asarray(ev.eval["precision"])[t, :, :, 0, -1]
    return float(p[p > -1].mean() * 100) if (p > -1).any() else math.nan


def evaluate_adapter(adapter: Any, dataset: Any, device: str) -> dict[str, float | None]:
    """COCO stats (AP, AP50, AP75, AP90) of an in-memory adapter through the ordinary evaluation path."""
    adapter.eval()
    with tempfile.TemporaryDirectory() as work:
        outcome = evaluate_model(
            adapter,
            dataset,
            EvaluationSettings(num_workers=0, resume=False),
            Path(work),
            device=device,
            progress=False,
        )[0]
        stats: dict[str, float | None] = {
            k: outcome.metrics[k].value for k in ("AP", "AP50", "AP75") if k in outcome.metrics
        }
        stats["AP90"] = ap_at_iou(dataset.annotations, Path(work) / MERGED_FILE, 0.9)
    return stats
