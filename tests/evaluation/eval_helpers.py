"""Synthetic detections for the engine tests: noisy copies of ground truth plus false positives."""

from __future__ import annotations

from typing import Any

import numpy as np

from dfine_bench.data import ResolvedDataset


def synthetic_detections(dataset: ResolvedDataset, seed: int = 0) -> list[dict[str, Any]]:
    """Jittered true boxes (some with the wrong class), random false positives, and images
    with more than 100 detections so the maxDets caps matter. Scores are continuous (no ties)."""
    rng = np.random.default_rng(seed)
    coco = dataset.coco
    cats = [c["id"] for c in coco["categories"]][:12]
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    dets: list[dict[str, Any]] = []
    for k, im in enumerate(coco["images"]):
        h, w = im["height"], im["width"]
        for a in by_image.get(im["id"], []):
            if rng.random() < 0.15:
                continue  # a miss
            x, y, bw, bh = a["bbox"]
            jitter = rng.normal(0, 0.08, 4) * [bw, bh, bw, bh]
            cat = a["category_id"] if rng.random() < 0.9 else int(rng.choice(cats))
            box = [x + jitter[0], y + jitter[1], max(0.5, bw + jitter[2]), max(0.5, bh + jitter[3])]
            dets.append({"image_id": im["id"], "category_id": cat, "bbox": box, "score": float(rng.random())})
        n_fp = 140 if k % 10 == 0 else int(rng.integers(0, 12))
        for _ in range(n_fp):
            bw, bh = rng.uniform(4, w / 2), rng.uniform(4, h / 2)
            box = [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]
            dets.append(
                {
                    "image_id": im["id"],
                    "category_id": int(rng.choice(cats)),
                    "bbox": [float(v) for v in box],
                    "score": float(rng.random() * 0.7),
                }
            )
    return dets
