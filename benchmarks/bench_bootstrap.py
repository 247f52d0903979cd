"""How long the AP bootstrap takes on a COCO-val-sized evaluation (target: B = 1000 within 60 s, 2 cores).

Builds a synthetic per-image matching of COCO val's size (5000 images, 100 detections each, 80
categories with a skewed frequency like COCO's, ~7 ground truths per image, ~1% crowd-ignored
detections) directly as ``ImageMatching`` arrays, then times ``bootstrap.summarize`` (weights,
B replicates, the full-sample pass, intervals) as the coco evaluator runs it. The matching's
structure is generated, not computed by COCOeval (that alone would take minutes); the exactness
of the re-accumulation is what ``tests/evaluation/test_bootstrap.py`` checks.

    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/bench_bootstrap.py [--replicates 1000] [--cocoeval N]

``--cocoeval N`` also times the evaluation itself on N synthetic COCO images (faster-coco-eval with
and without the pycocotools matching pass the bootstrap reads).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dfine_bench.config.settings import BootstrapSettings
from dfine_bench.evaluation.bootstrap import ImageMatching, summarize

IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)


def synthetic_matching(
    num_images: int = 5000, dets_per_image: int = 100, num_cats: int = 80, seed: int = 0
) -> ImageMatching:
    """A COCO-val-sized matching: true positives nested over IoU thresholds, detections sorted per
    category by descending score as COCOeval's accumulate sorts them."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, num_cats + 1) ** 0.8
    freq /= freq.sum()
    gt_counts = np.zeros((num_images, num_cats), dtype=np.int64)
    img, cat, score, tp, ign = [], [], [], [], []
    shifts = np.arange(IOU_THRS.size, dtype=np.uint16)
    for i in range(num_images):
        gt_cats = rng.choice(num_cats, size=rng.poisson(7.3), p=freq)
        np.add.at(gt_counts[i], gt_cats, 1)
        found = gt_cats[rng.random(gt_cats.size) < 0.75][:dets_per_image]
        n_fp = dets_per_image - found.size
        cats = np.concatenate([found, rng.choice(num_cats, size=n_fp, p=freq)])
        iou = np.concatenate([rng.beta(8, 2, found.size), np.zeros(n_fp)])
        img.append(np.full(dets_per_image, i, dtype=np.int32))
        cat.append(cats)
        score.append(np.concatenate([rng.beta(5, 2, found.size), rng.beta(2, 5, n_fp)]))
        tp.append(((iou[None, :] >= IOU_THRS[:, None]).astype(np.uint16) << shifts[:, None]).sum(0))
        ign.append(np.where(rng.random(dets_per_image) < 0.01, np.uint16(0x3FF), np.uint16(0)))
    img_a, cat_a, score_a = np.concatenate(img), np.concatenate(cat), np.concatenate(score)
    tp_a, ign_a = np.concatenate(tp).astype(np.uint16), np.concatenate(ign)
    tp_a &= ~ign_a
    order = np.lexsort((-score_a, cat_a))  # by category, then descending score
    offsets = np.searchsorted(cat_a[order], np.arange(num_cats + 1))
    return ImageMatching(
        image_ids=np.arange(1, num_images + 1, dtype=np.int64),
        category_ids=np.arange(1, num_cats + 1, dtype=np.int64),
        iou_thresholds=IOU_THRS,
        recall_thresholds=REC_THRS,
        offsets=offsets.astype(np.int64),
        det_image=img_a[order],
        det_score=score_a[order],
        det_tp=tp_a[order],
        det_ignored=ign_a[order],
        gt_counts=gt_counts,
    )


def synthetic_coco(num_images: int, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO dicts for ``--cocoeval``: ~7 boxes per image over 80 categories, 100 detections each
    (jittered ground truth, the rest random boxes)."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, num_images + 1):
        images.append({"id": i, "width": 640, "height": 480})
        boxes = []
        for _ in range(rng.poisson(7.3)):
            w, h = rng.uniform(10, 300), rng.uniform(10, 250)
            box = [rng.uniform(0, 640 - w), rng.uniform(0, 480 - h), w, h]
            cat = int(rng.integers(1, 81))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "bbox": box, "area": w * h})
            anns[-1]["iscrowd"] = 0
            boxes.append((box, cat))
        for box, cat in boxes[:100]:
            x, y, w, h = (v + rng.normal(0, 0.05 * s) for v, s in zip(box, (box[2], box[3]) * 2))
            dets.append({"image_id": i, "category_id": cat, "bbox": [x, y, max(w, 1), max(h, 1)]})
        for _ in range(100 - min(100, len(boxes))):
            w, h = rng.uniform(10, 300), rng.uniform(10, 250)
            box = [rng.uniform(0, 640 - w), rng.uniform(0, 480 - h), w, h]
            dets.append({"image_id": i, "category_id": int(rng.integers(1, 81)), "bbox": box})
    for d in dets:
        d["score"] = float(rng.random())
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, 81)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def time_cocoeval(num_images: int) -> None:
    """The evaluation's own cost with and without the matching the bootstrap needs (faster-coco-eval
    runs the AP; one extra pycocotools evaluate() restricted to area all gives the matching)."""
    from dfine_bench.evaluation.engines import run_engine

    gt, dets = synthetic_coco(num_images)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        path.write_text(json.dumps(gt))
        for matching in (False, True):
            start = time.perf_counter()
            result = run_engine(path, dets, matching=matching)
            print(
                f"faster_coco_eval on {num_images} images x 100 detections, matching={matching}: "
                f"{time.perf_counter() - start:.1f} s (AP {100 * result.stats['AP']:.2f})"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument(
        "--cocoeval",
        type=int,
        metavar="N",
        help="also time the evaluation itself on N synthetic images, with and without the matching pass",
    )
    args = ap.parse_args()
    if args.cocoeval:
        time_cocoeval(args.cocoeval)
    start = time.perf_counter()
    m = synthetic_matching(num_images=args.images)
    built = time.perf_counter() - start
    sizes = np.diff(m.offsets)
    print(
        f"synthetic matching: {m.num_images} images, {m.det_image.size} detections, "
        f"{m.category_ids.size} categories (largest {sizes.max()} detections), "
        f"{int(m.gt_counts.sum())} ground truths; built in {built:.1f} s"
    )
    start = time.perf_counter()
    cpu = time.process_time()
    boot = summarize(m, BootstrapSettings(replicates=args.replicates, seed=0))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"bootstrap B={args.replicates}: {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} cores; target 60 s)"
    )
    for name in ("AP", "AP50", "AP75"):
        (lo, hi), se = boot["ci"][name], boot["std"][name]
        print(f"  {name:5s} {boot['point'][name]:.2f}  95% CI [{lo:.2f}, {hi:.2f}]  se {se:.3f}")


if __name__ == "__main__":
    main()
