"""Error analysis as an evaluator: TIDE's dAP per error type, AP per class and per size, worst images.

**dAP per error type** comes from ``tidecv``, the TIDE authors' own library (Bolya et al., "TIDE:
A General Toolbox for Identifying Object Detection Errors", ECCV 2020). It was checked against
the paper's definitions on hand-made cases (``tests/evaluation/test_error_analysis.py``): at
IoU_fg = 0.5 and IoU_bg = 0.1 every false positive is a classification (IoU >= 0.5 with a GT of
another class), localization (0.1 <= IoU <= 0.5, right class), both (0.1 <= IoU <= 0.5, wrong
class), duplicate (right class, its GT already taken by a higher score) or background (IoU <= 0.1
with every GT) error, and an undetected GT that no cls/loc error covers is a missed error. Each
dAP is AP50 with that one error type fixed by its oracle, minus AP50 (TIDE's AP is COCO-style
101-point AP at IoU 0.5, top 100 detections per image). One thing tidecv gets wrong is redone
here (``_daps``: which classes the mean AP averages over). Two choices of tidecv are kept and
stated: a negative dAP (binning noise) is reported as 0, and its COCO loader needs polygon
``segmentation`` on every box, so the data are handed to it directly here instead. Images
without ground truth are registered explicitly: tidecv only visits images it knows, and would
otherwise drop their background errors.

**AP per class and per size** are COCO's (AP .50:.95; APs/APm/APl) through faster-coco-eval.
**Worst images**: ranked by error mass, the summed scores of an image's false positives (of the
main types) plus one per missed ground truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from dfine_bench.errors import DfineBenchError
from dfine_bench.evaluation.engines import run_engine
from dfine_bench.evaluation.evaluator import EvaluatorContext, EvaluatorResult, ImageInput, Rows
from dfine_bench.evaluation.predictions import rows_to_coco
from dfine_bench.evaluation.registry import register_evaluator
from dfine_bench.records.metrics import metric

POS_THRESHOLD = 0.5  # TIDE's IoU_fg
BACKGROUND_THRESHOLD = 0.1  # TIDE's IoU_bg
MAX_DETS = 100

#: TIDE short name -> (our error key, metric name), in the paper's order.
ERROR_TYPES = {
    "Cls": ("classification", "dAP_cls"),
    "Loc": ("localization", "dAP_loc"),
    "Both": ("both", "dAP_both"),
    "Dupe": ("duplicate", "dAP_dupl"),
    "Bkg": ("background", "dAP_bkg"),
    "Miss": ("missed", "dAP_miss"),
}
SPECIAL_TYPES = {"FalsePos": "dAP_fp", "FalseNeg": "dAP_fn"}


def _tide_data(
    coco: dict[str, Any], image_ids: Sequence[int], detections: dict[int, Rows]
) -> tuple[Any, Any]:
    from tidecv.data import Data

    wanted = set(image_ids)
    gt, preds = Data("ground truth", max_dets=MAX_DETS), Data("detections", max_dets=MAX_DETS)
    for c in coco["categories"]:
        gt.add_class(int(c["id"]), str(c["name"]))
        preds.add_class(int(c["id"]), str(c["name"]))
    for i in image_ids:  # every evaluated image, with or without ground truth (see the docstring)
        gt.add_image(int(i), str(i))
        preds.add_image(int(i), str(i))
    for a in coco["annotations"]:
        if int(a["image_id"]) not in wanted:
            continue
        box = [float(v) for v in a["bbox"]]
        if a.get("iscrowd", 0):
            gt.add_ignore_region(int(a["image_id"]), int(a["category_id"]), box)
        else:
            gt.add_ground_truth(int(a["image_id"]), int(a["category_id"]), box)
    for i, rows in detections.items():
        for x, y, w, h, score, cat in rows:
            preds.add_detection(int(i), int(cat), float(score), [x, y, w, h])
    return gt, preds


def _daps(run: Any) -> tuple[float, dict[str, float], dict[str, float]]:
    """AP50 and each oracle's dAP, averaging AP over the classes that have ground truth.

    This is the one thing written here rather than taken from tidecv: its ``get_mAP`` also
    averages in, as AP 0, every class that has detections but no ground truth among the
    evaluated images, which COCO's AP (and the paper, which uses it) leaves out. On a subset
    or a generated dataset with fewer classes than the model predicts, that alone cut AP50
    by two thirds. The class set is fixed by the unfixed data, so an oracle cannot change it.
    """
    from tidecv.quantify import TIDE, FalseNegativeError, FalsePositiveError

    classes = [c for c, obj in run.ap_data.objs.items() if obj.num_gt_positives > 0]

    def mean_ap(ap_data: Any) -> float:
        aps = [ap_data.objs[c].get_ap() if c in ap_data.objs else 0.0 for c in classes]
        return float(sum(aps) / len(aps)) if aps else 0.0

    ap50 = mean_ap(run.ap_data)
    main = {}
    for error_type in TIDE._error_types:
        fixed = run.fix_errors(lambda e, t=error_type: isinstance(e, t))
        # tidecv's convention, kept: a negative dAP is binning noise and reads 0
        main[error_type.short_name] = max(mean_ap(fixed) - ap50, 0.0)
    special = {
        FalsePositiveError.short_name: mean_ap(run.fix_errors(transform=FalsePositiveError.fix)) - ap50,
        FalseNegativeError.short_name: mean_ap(run.fix_errors(false_neg_dict=run.false_negatives)) - ap50,
    }
    return ap50, main, special


def _worst_images(run: Any, n: int, files: dict[int, str]) -> list[dict[str, Any]]:
    mass: dict[int, float] = {}
    kinds: dict[int, Counter[str]] = {}
    for error in run.errors:
        short = type(error).short_name
        if short not in ERROR_TYPES:
            continue
        if hasattr(error, "pred"):
            image, weight = int(error.pred["image"]), float(error.pred["score"])
        else:
            image, weight = int(error.gt["image"]), 1.0
        mass[image] = mass.get(image, 0.0) + weight
        kinds.setdefault(image, Counter())[ERROR_TYPES[short][0]] += 1
    ranked = sorted(mass, key=lambda i: (-mass[i], i))[: max(0, n)]
    return [
        {"image_id": i, "file_name": files.get(i), "error_mass": round(mass[i], 4), "errors": dict(kinds[i])}
        for i in ranked
    ]


class ErrorAnalysisEvaluator:
    """TIDE error breakdown plus COCO per-class / per-size AP; task ``error_analysis``."""

    name = "error_analysis"
    task = "error_analysis"
    key = "tide"

    def __init__(self, context: EvaluatorContext) -> None:
        self.context = context
        self.reset()

    def reset(self) -> None:
        self._dets: dict[int, Rows] = {}

    def process(self, inputs: Sequence[ImageInput], outputs: Sequence[Rows]) -> None:
        for image, rows in zip(inputs, outputs):
            self._dets[image.image_id] = rows

    def evaluate(self) -> EvaluatorResult:
        from tidecv import TIDE

        if not any(self._dets.values()):
            raise DfineBenchError(f"no detections on any of {len(self._dets)} images; nothing to analyse")
        dataset, cfg = self.context.dataset, self.context.cfg
        image_ids = sorted(self._dets)
        names = dataset.category_names()
        gt, preds = _tide_data(dataset.coco, image_ids, self._dets)
        run = TIDE(pos_threshold=POS_THRESHOLD, background_threshold=BACKGROUND_THRESHOLD).evaluate(
            gt, preds, mode=TIDE.BOX, name="detections"
        )
        ap50, main, special = _daps(run)
        counts = {type_.short_name: int(v) for type_, v in run.count_errors().items()}
        metrics = {"tide_AP50": metric("tide_AP50", ap50)}
        for short, (_, name) in ERROR_TYPES.items():
            metrics[name] = metric(name, main[short])
        for short, name in SPECIAL_TYPES.items():
            metrics[name] = metric(name, special[short])
        coco = run_engine(
            dataset.annotations,
            [d for i in image_ids for d in rows_to_coco(i, self._dets[i])],
            engine=cfg.engine,
            image_ids=image_ids,
            copy_input=False,
        )
        per_class = {
            names.get(cid, str(cid)): {
                "AP": round(100.0 * ap, 4),
                "AP50_tide": round(float(run.ap_data.objs[cid].get_ap()), 4)
                if cid in run.ap_data.objs
                else None,
            }
            for cid, ap in coco.per_category_ap.items()
            if ap >= 0
        }
        per_size = {
            k: (round(100.0 * coco.stats[k], 4) if coco.stats[k] >= 0 else None)
            for k in ("APs", "APm", "APl")
        }
        details = {
            "error_analysis": {
                "method": "TIDE (tidecv)",
                "pos_threshold": POS_THRESHOLD,
                "background_threshold": BACKGROUND_THRESHOLD,
                "max_dets": MAX_DETS,
                "ap50": round(ap50, 4),
                "dap": {ERROR_TYPES[s][0]: round(main[s], 4) for s in ERROR_TYPES},
                "dap_special": {
                    "false_positives": round(special["FalsePos"], 4),
                    "false_negatives": round(special["FalseNeg"], 4),
                },
                "error_counts": {ERROR_TYPES[s][0]: counts.get(s, 0) for s in ERROR_TYPES},
                "per_class_ap": per_class,
                "per_size_ap": per_size,
                "worst_images": _worst_images(
                    run,
                    int(cfg.worst_images),
                    {int(im["id"]): str(im.get("file_name", "")) for im in dataset.coco["images"]},
                ),
            }
        }
        self._dets = {}
        return EvaluatorResult(
            metrics=metrics,
            details=details,
            setup={"engine": coco.engine},
            notes=[
                "error analysis: TIDE dAP at IoU 0.5 (AP50-based), per-class / per-size AP at IoU .50:.95"
            ],
        )


register_evaluator(
    "error_analysis",
    ErrorAnalysisEvaluator,
    task="error_analysis",
    key=lambda _cfg: ErrorAnalysisEvaluator.key,
    description="TIDE dAP per error type (tidecv), AP per class and per size, the worst images",
    requires=("tidecv", "cv2"),
    install="pip install 'dfine-bench[error-analysis]'",
)
