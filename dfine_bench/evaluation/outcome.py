"""Turning an engine's result into a ``TaskOutcome``, and evaluating a results file on its own.

``evaluate_predictions`` is what ``dfine-bench evaluate`` runs: a COCO results file from any
detector against an annotation file, with the same checks, metrics and details as a full run
(the AP confidence intervals included, ``add_bootstrap``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dfine_bench.config.settings import BootstrapSettings
from dfine_bench.data.annotations import load_annotations
from dfine_bench.data.generated import is_generated_annotations
from dfine_bench.evaluation.bootstrap import summarize
from dfine_bench.evaluation.engines import CocoResult, run_engine
from dfine_bench.evaluation.predictions import load_results_file, validate_detections
from dfine_bench.profiling.protocols import accuracy_deviations
from dfine_bench.records.metrics import COCO_STATS, metric
from dfine_bench.records.schema import DatasetInfo, Metric, TaskOutcome
from dfine_bench.utils.files import sha256_file


def coco_metrics(result: CocoResult) -> tuple[dict[str, Metric], list[str]]:
    """The 12 stats in percent; one COCO leaves undefined (-1: no ground truth there) is None, noted."""
    metrics: dict[str, Metric] = {}
    undefined = []
    for name in COCO_STATS:
        v = result.stats[name]
        if v < 0:
            undefined.append(name)
            metrics[name] = metric(name, None)
        else:
            metrics[name] = metric(name, 100.0 * v)
    notes = []
    if undefined:
        notes.append(
            f"{', '.join(undefined)} undefined: the evaluated images hold no ground truth in that range"
        )
    return metrics, notes


def result_details(result: CocoResult, category_names: dict[int, str]) -> dict[str, Any]:
    """Per-category AP (percent; categories without ground truth left out), the PR curve, extras."""
    per_cat = {
        category_names.get(cid, str(cid)): round(100.0 * ap, 6)
        for cid, ap in result.per_category_ap.items()
        if ap >= 0
    }
    details: dict[str, Any] = {
        "per_category_ap": per_cat,
        "pr_curve": {
            "iou": "0.50:0.95",
            "area": "all",
            "max_dets": 100,
            "recall": result.pr_recall,
            "precision": result.pr_precision,
        },
        "engine_time_s": round(result.seconds, 4),
    }
    if result.extended:
        details["extended_metrics"] = {k: 100.0 * v for k, v in result.extended.items()}
    return details


def add_bootstrap(details: dict[str, Any], result: CocoResult, settings: BootstrapSettings) -> list[str]:
    """Put the AP bootstrap (``bootstrap.summarize``) into ``details["bootstrap"]``; returns notes.

    A full-sample value from the matching that differs from the engine's (faster-coco-eval and
    pycocotools disagreeing) is noted: the intervals are pycocotools' then.
    """
    if not settings.enabled or result.matching is None:
        return []
    boot = summarize(result.matching, settings)
    details["bootstrap"] = boot
    off = [
        name
        for name, v in boot["point"].items()
        if v is not None and result.stats[name] >= 0 and abs(v - 100.0 * result.stats[name]) > 1e-6
    ]
    if not off:
        return []
    return [
        f"the AP bootstrap's full-sample {', '.join(off)} (pycocotools' matching) differ from "
        f"{result.engine}'s; its intervals are around pycocotools' values"
    ]


def evaluate_predictions(
    annotations: Path,
    predictions: Path,
    *,
    engine: str = "faster_coco_eval",
    bootstrap: BootstrapSettings | None = None,
) -> TaskOutcome:
    """Evaluate a COCO results file against an annotation file (every image in it, as COCO's tools do).

    ``bootstrap``: the AP confidence intervals' settings (default: on, B = 1000, seed 0).
    """
    bootstrap = bootstrap or BootstrapSettings()
    annotations, predictions = Path(annotations), Path(predictions)
    coco = load_annotations(annotations)
    dets = load_results_file(predictions)
    image_ids = [int(im["id"]) for im in coco["images"]]
    names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    validate_detections(dets, image_ids=image_ids, category_ids=names, source=str(predictions))
    result = run_engine(annotations, dets, engine=engine, matching=bootstrap.enabled)
    metrics, notes = coco_metrics(result)
    per_image: dict[int, int] = {}
    for d in dets:
        per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
    with_preds = len(per_image)
    metrics["images_seen"] = metric("images_seen", len(image_ids))
    metrics["images_failed"] = metric("images_failed", 0)
    metrics["images_skipped"] = metric("images_skipped", 0)
    if with_preds < len(image_ids):
        notes.append(
            f"{len(image_ids) - with_preds} of {len(image_ids)} images have no detections in "
            f"{predictions.name}; "
            "they count as misses (COCO's standard)"
        )
    generated = is_generated_annotations(annotations, coco)
    dataset = DatasetInfo(
        name=annotations.stem.removeprefix("instances_") if not generated else "generated",
        kind="generated" if generated else "coco",
        generated=generated,
        annotations=str(annotations),
        annotations_sha256=sha256_file(annotations),
        images_root=None,
        num_images=len(image_ids),
    )
    details = result_details(result, names)
    notes += add_bootstrap(details, result, bootstrap)
    details.update(
        {
            "predictions_file": str(predictions),
            "predictions_sha256": sha256_file(predictions),
            "num_detections": len(dets),
            "images_with_predictions": with_preds,
            "max_detections_per_image": max(per_image.values()),
        }
    )
    return TaskOutcome(
        task="evaluation",
        key=engine,
        metrics=metrics,
        details=details,
        setup={
            "engine": engine,
            # whatever the results file holds, unchanged: the engine applies its standard caps
            "detections_per_image": max(per_image.values()),
            "score_threshold": None,
            "timed": None,
            # the detector and its input size are unknown here: only the data can be judged
            "deviations": accuracy_deviations(
                dataset.name,
                dataset.num_images,
                generated,
                None,
                annotations_sha256=dataset.annotations_sha256,
                check_annotations=True,
            ),
        },
        dataset=dataset,
        notes=notes,
    )
