"""The error-analysis evaluator on hand-made cases where every error type is known.

The expected numbers are worked out by hand from the TIDE paper's definitions (Bolya et al.,
ECCV 2020): errors at IoU_fg 0.5 / IoU_bg 0.1, AP50 by COCO's 101-point interpolation, each
dAP = AP50 with one oracle applied - AP50. They check tidecv (which the evaluator wraps) as
much as the wrapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data import ResolvedDataset
from dfine_bench.evaluation import EvaluatorContext, ImageInput, create_evaluator

pytest.importorskip("tidecv", reason="the error-analysis extra (pip install 'dfine-bench[error-analysis]')")

BOX = [10.0, 10.0, 40.0, 40.0]
SHIFTED = [30.0, 10.0, 40.0, 40.0]  # IoU 0.25 with BOX: between IoU_bg 0.1 and IoU_fg 0.5


def _dataset(tmp_path: Path) -> ResolvedDataset:
    anns = []

    def gt(image: int, cat: int, box: list[float]) -> None:
        anns.append(
            {"id": len(anns) + 1, "image_id": image, "category_id": cat, "bbox": box, "area": box[2] * box[3],
             "iscrowd": 0}
        )  # fmt: skip

    gt(1, 1, BOX)  # detected with the wrong class: classification error
    gt(2, 1, BOX)  # detected, then detected again: a duplicate
    gt(3, 1, BOX)  # detected badly placed: localization error
    gt(4, 1, BOX)  # never detected: missed
    # image 5 has no ground truth at all: a detection there is a background error
    gt(6, 2, BOX)  # a badly placed detection of the wrong class: both (and the GT is missed)
    gt(7, 2, BOX)  # true positives, so both classes have a defined AP
    gt(8, 1, [50.0, 50.0, 40.0, 40.0])
    coco = {
        "images": [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in range(1, 9)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": anns,
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return ResolvedDataset(name="handmade", images_dir=tmp_path, annotations=path, generated=False)


DETECTIONS = {  # image -> rows [x, y, w, h, score, category]
    1: [[*BOX, 0.9, 2]],
    2: [[*BOX, 0.8, 1], [12.0, 10.0, 40.0, 40.0, 0.7, 1]],
    3: [[*SHIFTED, 0.6, 1]],
    4: [],
    5: [[*BOX, 0.95, 1]],
    6: [[*SHIFTED, 0.5, 1]],
    7: [[*BOX, 0.85, 2]],
    8: [[50.0, 50.0, 40.0, 40.0, 0.4, 1]],
}


def _ap(steps: list[tuple[int, float]]) -> float:
    """101-point AP from (number of recall points, interpolated precision) runs, in percent."""
    return 100.0 * sum(n * p for n, p in steps) / 101


def test_every_error_type_is_found_and_its_dap_matches_the_hand_computation(tmp_path: Path) -> None:
    cfg = EvaluationSettings(worst_images=3)
    ev = create_evaluator("error_analysis", EvaluatorContext(dataset=_dataset(tmp_path), cfg=cfg))
    ev.reset()
    ids = sorted(DETECTIONS)
    ev.process([ImageInput(i) for i in ids], [DETECTIONS[i] for i in ids])
    result = ev.evaluate()
    ea = result.details["error_analysis"]
    assert ea["error_counts"] == {
        "classification": 1, "localization": 1, "both": 1, "duplicate": 1, "background": 1,
        # image 4's GT, and image 6's: a "both" error does not cover its GT (the paper's Miss definition)
        "missed": 2,
    }  # fmt: skip

    # class a (5 GT), by score: .95 bkg, .8 TP, .7 dupl, .6 loc, .5 both, .4 TP
    #   -> precision .5 up to recall .2 (21 points), 1/3 up to .4 (20 points)
    # class b (2 GT): .9 cls, .85 TP -> precision .5 up to recall .5 (51 points)
    ap_a, ap_b = _ap([(21, 1 / 2), (20, 1 / 3)]), _ap([(51, 1 / 2)])
    ap50 = (ap_a + ap_b) / 2
    assert result.metrics["tide_AP50"].value == pytest.approx(ap50, abs=1e-6)
    # Cls oracle: the .9 detection becomes a TP of class a (image 1's GT was free); class b loses an FP
    cls_a = _ap([(41, 2 / 3), (20, 3 / 7)])
    assert result.metrics["dAP_cls"].value == pytest.approx((cls_a + _ap([(51, 1.0)])) / 2 - ap50, abs=1e-6)
    # Miss oracle: image 4's and image 6's GT leave the count (a: 4 GT, b: 1 GT)
    miss_a, miss_b = _ap([(26, 1 / 2), (25, 1 / 3)]), _ap([(101, 1 / 2)])
    assert result.metrics["dAP_miss"].value == pytest.approx((miss_a + miss_b) / 2 - ap50, abs=1e-6)
    # Bkg oracle: the .95 detection on image 5 goes; class a: 1.0 up to .2, 1/3... -> 2/5 after it
    bkg_a = _ap([(21, 1.0), (20, 2 / 5)])
    assert result.metrics["dAP_bkg"].value == pytest.approx((bkg_a + ap_b) / 2 - ap50, abs=1e-6)
    # Dupl oracle: the .7 detection goes -> class a: .5 up to .2, 2/5 up to .4
    dupl_a = _ap([(21, 1 / 2), (20, 2 / 5)])
    assert result.metrics["dAP_dupl"].value == pytest.approx((dupl_a + ap_b) / 2 - ap50, abs=1e-6)
    # Loc oracle: the .6 detection takes image 3's GT -> class a: .5 up to .2, 1/2 up to .4, 3/6 up to .6
    loc_a = _ap([(21, 1 / 2), (20, 1 / 2), (20, 1 / 2)])
    assert result.metrics["dAP_loc"].value == pytest.approx((loc_a + ap_b) / 2 - ap50, abs=1e-6)

    # per class and per size from COCO (.50:.95); every box here is 40x40 = 1600 px: medium
    assert set(ea["per_class_ap"]) == {"a", "b"}
    assert ea["per_size_ap"]["APs"] is None and ea["per_size_ap"]["APm"] is not None
    # worst images by error mass: image 6 (both .5 + a missed GT), image 4 (missed), image 5 (bkg .95)
    assert [w["image_id"] for w in ea["worst_images"]] == [6, 4, 5]
    assert ea["worst_images"][0] == {
        "image_id": 6,
        "file_name": "6.png",  # so the report can name the file to open
        "error_mass": 1.5,
        "errors": {"both": 1, "missed": 1},
    }


def test_a_class_without_ground_truth_does_not_dilute_ap50(tmp_path: Path) -> None:
    """tidecv alone averages a class with detections but no GT in as AP 0; COCO (and TIDE's paper)
    leave it out. A background detection of such a class must stay a background error only."""
    from dfine_bench.evaluation.engines import run_engine
    from dfine_bench.evaluation.predictions import rows_to_coco

    data = _dataset(tmp_path)
    coco = json.loads(data.annotations.read_text())
    coco["categories"].append({"id": 3, "name": "c"})  # a class nobody annotated
    data.annotations.write_text(json.dumps(coco))
    data = ResolvedDataset(
        name="handmade", images_dir=tmp_path, annotations=data.annotations, generated=False
    )
    dets = {**DETECTIONS, 5: [*DETECTIONS[5], [60.0, 60.0, 20.0, 20.0, 0.05, 3]]}
    ev = create_evaluator("error_analysis", EvaluatorContext(dataset=data, cfg=EvaluationSettings()))
    ev.reset()
    ids = sorted(dets)
    ev.process([ImageInput(i) for i in ids], [dets[i] for i in ids])
    result = ev.evaluate()
    assert result.details["error_analysis"]["error_counts"]["background"] == 2
    ap50 = (_ap([(21, 1 / 2), (20, 1 / 3)]) + _ap([(51, 1 / 2)])) / 2
    assert result.metrics["tide_AP50"].value == pytest.approx(ap50, abs=1e-6)
    # and it is COCO's AP50 on these data (one detection per class and image: the caps agree)
    cocodets = [d for i in ids for d in rows_to_coco(i, dets[i])]
    assert run_engine(data.annotations, cocodets).stats["AP50"] * 100 == pytest.approx(ap50, abs=1e-6)
