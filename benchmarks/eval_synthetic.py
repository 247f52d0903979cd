"""Synthetic COCO-val-sized annotations and detections for the engine benchmark (no images).

``make_annotations`` writes 5000 images with about 36k boxes (COCO val2017's counts: 4952
images with objects, 36781 boxes) spread over COCO's 80 categories and three area ranges,
with crowd boxes; ``make_detections`` gives each image exactly ``per_image`` detections:
jittered true boxes (some with the wrong class) topped up with false positives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS, COCO80_NAMES


def make_annotations(path: Path, num_images: int = 5000, boxes_per_image: float = 7.3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    images, anns = [], []
    for i in range(num_images):
        image_id = 10 + 3 * i
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "height": h, "width": w})
        for _ in range(int(rng.poisson(boxes_per_image))):
            side = float(np.exp(rng.uniform(np.log(6), np.log(400))))  # log-uniform: all area ranges
            bw, bh = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            bw, bh = min(bw, w - 1), min(bh, h - 1)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": int(rng.choice(COCO80_CATEGORY_IDS)),
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": int(rng.random() < 0.01),
                }
            )
    cats = [{"id": c, "name": n} for c, n in zip(COCO80_CATEGORY_IDS, COCO80_NAMES)]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def make_detections(annotations: Path, per_image: int = 100, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    coco = json.loads(annotations.read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    dets: list[dict[str, Any]] = []
    for im in coco["images"]:
        mine: list[dict[str, Any]] = []
        for a in by_image.get(im["id"], [])[:per_image]:
            x, y, bw, bh = a["bbox"]
            j = rng.normal(0, 0.1, 4) * [bw, bh, bw, bh]
            cat = a["category_id"] if rng.random() < 0.8 else int(rng.choice(COCO80_CATEGORY_IDS))
            box = [x + j[0], y + j[1], max(1.0, bw + j[2]), max(1.0, bh + j[3])]
            mine.append({"image_id": im["id"], "category_id": cat, "bbox": box, "score": float(rng.random())})
        while len(mine) < per_image:
            bw, bh = rng.uniform(4, 300), rng.uniform(4, 300)
            box = [float(rng.uniform(0, 640 - bw)), float(rng.uniform(0, 480 - bh)), float(bw), float(bh)]
            mine.append(
                {
                    "image_id": im["id"],
                    "category_id": int(rng.choice(COCO80_CATEGORY_IDS)),
                    "bbox": box,
                    "score": float(rng.random() * 0.5),
                }
            )
        dets.extend(mine)
    return dets
