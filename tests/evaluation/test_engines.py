"""The two COCO engines agree, get copies of their input, and bad detections are refused."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import pytest
from eval_helpers import synthetic_detections

from dfine_bench.data import ResolvedDataset
from dfine_bench.errors import ConfigError, DatasetError
from dfine_bench.evaluation import run_engine, validate_detections
from dfine_bench.records.metrics import COCO_STATS


@pytest.fixture(scope="module")
def agreement(many_images: ResolvedDataset):
    dets = synthetic_detections(many_images)
    before = copy.deepcopy(dets)
    fast = run_engine(many_images.annotations, dets, engine="faster_coco_eval")
    ref = run_engine(many_images.annotations, dets, engine="pycocotools")
    return dets, before, fast, ref


def test_twelve_stats_agree_within_1e_4(agreement) -> None:
    dets, _, fast, ref = agreement
    assert len(dets) > 3000 and len({d["image_id"] for d in dets}) > 250
    for name in COCO_STATS:
        assert abs(fast.stats[name] - ref.stats[name]) <= 1e-4, name
    # the data is not degenerate: every stat is a real, mid-range number
    assert all(0.05 < fast.stats[n] < 0.99 for n in COCO_STATS), fast.stats


def test_per_category_and_pr_curve_agree(agreement) -> None:
    _, _, fast, ref = agreement
    assert fast.per_category_ap.keys() == ref.per_category_ap.keys()
    for cid, ap in fast.per_category_ap.items():
        assert abs(ap - ref.per_category_ap[cid]) <= 1e-4, cid
    assert sum(ap >= 0 for ap in fast.per_category_ap.values()) == 12  # the drawn categories
    assert len(fast.pr_recall) == 101 and fast.pr_recall[0] == 0.0 and fast.pr_recall[-1] == 1.0
    for a, b in zip(fast.pr_precision, ref.pr_precision):
        assert (a is None and b is None) or abs(a - b) <= 1e-4
    # precision falls (weakly) as recall rises: COCO's interpolated curve
    vals = [p for p in fast.pr_precision if p is not None]
    assert all(x >= y - 1e-12 for x, y in itertools.pairwise(vals))
    assert "AR50" in fast.extended and fast.extended["AR50"] >= fast.stats["AR100"]


def test_engines_do_not_modify_the_callers_detections(agreement) -> None:
    dets, before, _, _ = agreement
    assert dets == before


def test_max_dets_caps_per_category_not_per_image(tmp_path: Path) -> None:
    """150 confident detections of another class do not push out the one right detection."""
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": 100, "width": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900.0, "iscrowd": 0},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 2,
                "bbox": [50, 50, 40, 40],
                "area": 1600.0,
                "iscrowd": 0,
            },
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}],
    }
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(coco))
    dets = [
        {"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.9 + i * 1e-4} for i in range(150)
    ]
    dets.append({"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.01})
    for engine in ("faster_coco_eval", "pycocotools"):
        r = run_engine(ann, dets, engine=engine)
        assert r.per_category_ap[1] == pytest.approx(1.0), engine
        assert r.per_category_ap[2] == pytest.approx(0.0), engine


def test_image_ids_restrict_the_evaluation(many_images: ResolvedDataset) -> None:
    dets = synthetic_detections(many_images)
    some = many_images.image_ids()[:50]
    part = run_engine(
        many_images.annotations, [d for d in dets if d["image_id"] in set(some)], image_ids=some
    )
    whole = run_engine(many_images.annotations, dets)
    assert part.stats["AP"] != whole.stats["AP"]
    again = run_engine(many_images.annotations, dets, image_ids=some)  # detections elsewhere are ignored
    assert again.stats == part.stats


def test_empty_detections_and_unknown_engine(many_images: ResolvedDataset) -> None:
    for engine in ("faster_coco_eval", "pycocotools"):
        with pytest.raises(DatasetError, match="empty"):
            run_engine(many_images.annotations, [], engine=engine)
    with pytest.raises(ConfigError, match=r"evaluation\.engine"):
        run_engine(many_images.annotations, [{}], engine="cocoapi")


GOOD = {"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 2.0, 3.0], "score": 0.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": math.nan}, "score that is not a finite number"),
        ({"score": math.inf}, "score that is not a finite number"),
        ({"bbox": [0.0, math.inf, 1.0, 1.0]}, "not 4 finite numbers"),
        ({"bbox": [0.0, math.nan, 1.0, 1.0]}, "not 4 finite numbers"),
        ({"bbox": [0.0, 0.0, -1.0, 1.0]}, "negative-size bbox"),
        ({"bbox": [0.0, 0.0, 1.0]}, "not 4 finite numbers"),
        ({"image_id": 99}, "image_id 99, which is not in the annotation file"),
        ({"category_id": 5}, "category_id 5, which is not in the annotation file"),
    ],
)
def test_bad_detections_name_source_and_entry(change: dict, message: str) -> None:
    dets = [dict(GOOD), {**GOOD, **change}]
    with pytest.raises(DatasetError, match=message) as err:
        validate_detections(dets, image_ids=[1], category_ids=[1], source="preds.json")
    assert str(err.value).startswith("preds.json: detection [1]")


def test_missing_fields_and_empty_list() -> None:
    with pytest.raises(DatasetError, match=r"\[0\] lacks the field\(s\) score"):
        validate_detections(
            [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
            image_ids=[1],
            category_ids=[1],
            source="p",
        )
    with pytest.raises(DatasetError, match="no predictions at all"):
        validate_detections([], image_ids=[1], category_ids=[1], source="p")
    validate_detections([GOOD], image_ids=[1], category_ids=[1], source="p")  # a good one passes
