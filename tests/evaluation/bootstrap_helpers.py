"""Small synthetic COCO evaluations for the bootstrap tests, and pycocotools on a resample."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dfine_bench.evaluation.bootstrap import ImageMatching, matching_from_cocoeval


def synthetic_coco(
    num_images: int = 30, num_cats: int = 3, seed: int = 0, crowd: bool = True
) -> dict[str, Any]:
    """Ground truth: 0-5 boxes per image, some crowd regions, one category missing from some images."""
    rng = np.random.default_rng(seed)
    images = [
        {"id": 10 + 3 * i, "width": 200, "height": 160, "file_name": f"{i}.jpg"} for i in range(num_images)
    ]
    anns = []
    for im in images:
        for _ in range(int(rng.integers(0, 6))):
            w, h = rng.uniform(8, 80), rng.uniform(8, 60)
            x, y = rng.uniform(0, 200 - w), rng.uniform(0, 160 - h)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": int(rng.integers(1, num_cats + 1)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(crowd and rng.random() < 0.08),
                }
            )
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, num_cats + 1)]
    return {"images": images, "annotations": anns, "categories": cats}


def synthetic_dets(coco: dict[str, Any], seed: int = 0, quality: float = 0.08) -> list[dict[str, Any]]:
    """Jittered copies of the ground truth (``quality``: jitter as a fraction of the size; some
    wrong class, some missed) plus false positives; continuous scores, so no ties."""
    rng = np.random.default_rng(seed)
    n_cats = len(coco["categories"])
    dets = []
    for a in coco["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = a["bbox"]
        j = rng.normal(0, quality, 4) * [w, h, w, h]
        cat = a["category_id"] if rng.random() < 0.9 else int(rng.integers(1, n_cats + 1))
        box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
        dets.append(
            {
                "image_id": a["image_id"],
                "category_id": cat,
                "bbox": box,
                "score": float(rng.random()),
            }
        )
    for im in coco["images"]:
        for _ in range(int(rng.integers(0, 5))):
            w, h = rng.uniform(8, 80), rng.uniform(8, 60)
            box = [rng.uniform(0, 200 - w), rng.uniform(0, 160 - h), w, h]
            dets.append(
                {
                    "image_id": im["id"],
                    "category_id": int(rng.integers(1, n_cats + 1)),
                    "bbox": box,
                    "score": float(rng.random()),
                }
            )
    return dets


def run_cocoeval(coco: dict[str, Any], dets: list[dict[str, Any]], tmp: Path) -> COCOeval:
    """pycocotools' full evaluation (evaluate, accumulate, summarize), quietly."""
    path = tmp / f"gt-{len(list(tmp.iterdir()))}.json"
    path.write_text(json.dumps(coco))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        dt = gt.loadRes([{**d, "bbox": list(d["bbox"])} for d in dets])
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def matching_of(
    coco: dict[str, Any], dets: list[dict[str, Any]], tmp: Path
) -> tuple[ImageMatching, COCOeval]:
    ev = run_cocoeval(coco, dets, tmp)
    return matching_from_cocoeval(ev), ev


def resampled(
    coco: dict[str, Any], dets: list[dict[str, Any]], counts: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The resample as a dataset of its own: image ``i`` (sorted ids) copied ``counts[i]`` times,
    every copy with a new image id (and its annotations and detections with it)."""
    ids = sorted(im["id"] for im in coco["images"])
    by_id = {im["id"]: im for im in coco["images"]}
    anns_of: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        anns_of.setdefault(a["image_id"], []).append(a)
    dets_of: dict[int, list[dict[str, Any]]] = {}
    for d in dets:
        dets_of.setdefault(d["image_id"], []).append(d)
    images, anns, new_dets = [], [], []
    next_id = 1
    for i, old in enumerate(ids):
        for _ in range(int(counts[i])):
            images.append({**by_id[old], "id": next_id})
            for a in anns_of.get(old, []):
                anns.append({**a, "id": len(anns) + 1, "image_id": next_id, "bbox": list(a["bbox"])})
            for d in dets_of.get(old, []):
                new_dets.append({**d, "image_id": next_id, "bbox": list(d["bbox"])})
            next_id += 1
    return {**coco, "images": images, "annotations": anns}, new_dets
