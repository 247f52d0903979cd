"""The inference loop: images -> model -> detections streamed to disk -> COCO evaluation.

DataLoader workers decode and preprocess while the model runs; each finished batch's
detections are appended to the predictions folder at once, so an interrupted run resumes
where it stopped. Detections are exactly what the adapter's official postprocessor keeps
(D-FINE/RT-DETR: top 300, no threshold); nothing is re-capped or thresholded here.

An unreadable image is counted, recorded and left out of the evaluated image set (with a
loud note); more than ``evaluation.max_failed_fraction`` of them fails the evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from dfine_bench.adapters.base import DetectorAdapter, Preprocessor
from dfine_bench.config.schema import EvaluationConfig
from dfine_bench.data.dataset import ResolvedDataset, read_image
from dfine_bench.errors import DfineBenchError
from dfine_bench.evaluation import distributed as D
from dfine_bench.evaluation.engines import run_engine
from dfine_bench.evaluation.labelmap import check_label_map
from dfine_bench.evaluation.outcome import coco_metrics, result_details
from dfine_bench.evaluation.predictions import PredictionStream, rows_to_coco
from dfine_bench.profiling.protocols import accuracy_deviations
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import TaskOutcome
from dfine_bench.utils.progress import Progress

log = logging.getLogger(__name__)


def _value(v: object) -> object:
    return v.value if isinstance(v, Enum) else v


class _ImageDataset(Dataset):
    """Decodes and preprocesses one image in a worker; a failure becomes a marker, not an exception."""

    def __init__(self, items: list[tuple[int, Path]], preprocessor: Preprocessor) -> None:
        self.items, self.preprocessor = items, preprocessor

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id, path = self.items[index]
        try:
            image = read_image(path)
            return {
                "image_id": image_id,
                "pixels": self.preprocessor(image),
                "size": image.shape[:2],
                "error": None,
            }
        except Exception as exc:  # any decode/preprocess error is counted, not fatal
            return {
                "image_id": image_id,
                "pixels": None,
                "size": None,
                "error": f"{type(exc).__name__}: {exc}",
            }


class _Collate:
    """Batches the readable images with the family's own collate; failures ride along by id."""

    def __init__(self, preprocessor: Preprocessor) -> None:
        self.preprocessor = preprocessor

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ok = [s for s in samples if s["error"] is None]
        batch: dict[str, Any] = {
            "failed": [(s["image_id"], s["error"]) for s in samples if s["error"] is not None],
            "image_ids": [s["image_id"] for s in ok],
            "sizes": [(int(s["size"][0]), int(s["size"][1])) for s in ok],
            "pixels": None,
            "extras": {},
        }
        if ok:
            batch["pixels"], batch["extras"] = self.preprocessor.collate([s["pixels"] for s in ok])
        return batch


def _meta(adapter: DetectorAdapter, dataset: ResolvedDataset) -> dict[str, Any]:
    """What the streamed predictions belong to; a mismatch means they are not reused."""
    info = dataset.info()
    return {
        "model": adapter.spec.name,
        "weights": adapter.weights.label,
        "weights_sha256": adapter.weights.sha256,
        "input_size": list(adapter.spec.input_size),
        "annotations_sha256": info.annotations_sha256,
        "images_root": info.images_root,
    }


def _synchronize(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def _infer(
    adapter: DetectorAdapter,
    items: list[tuple[int, Path]],
    stream: PredictionStream,
    cfg: EvaluationConfig,
    device: str,
    progress: Progress,
) -> tuple[float, int, int]:
    """Run the shard; returns (seconds inside forward, max detections per image, failures)."""
    pre = adapter.preprocessor()
    loader = DataLoader(
        _ImageDataset(items, pre),
        batch_size=max(1, int(cfg.batch_size)),
        shuffle=False,
        num_workers=max(0, int(cfg.num_workers)),
        collate_fn=_Collate(pre),
        pin_memory=device.startswith("cuda"),
    )
    forward_s, max_dets, failures = 0.0, 0, 0
    with torch.inference_mode():
        for batch in loader:
            for image_id, error in batch["failed"]:
                failures += 1
                log.warning("image %s could not be read: %s", image_id, error)
                stream.write_failed(image_id, error)
            if batch["pixels"] is not None:
                pixels = batch["pixels"].to(adapter.device, adapter.dtype, non_blocking=True)
                extras = {k: v.to(adapter.device) for k, v in batch["extras"].items()}
                _synchronize(device)
                start = time.perf_counter()
                raw = adapter.forward(pixels, **extras)
                _synchronize(device)
                forward_s += time.perf_counter() - start
                for image_id, dets in zip(batch["image_ids"], adapter.postprocess(raw, batch["sizes"])):
                    rows = _rows(dets)
                    max_dets = max(max_dets, len(rows))
                    stream.write_ok(image_id, rows)
            stream.flush()
            progress.update(len(batch["image_ids"]) + len(batch["failed"]))
    return forward_s, max_dets, failures


def _rows(dets: Any) -> list[list[float]]:
    boxes = dets.boxes.detach().float().cpu()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    scores = dets.scores.detach().float().cpu().tolist()
    cats = dets.category_ids.detach().cpu().tolist()
    return [[*b, s, int(c)] for b, s, c in zip(xywh, scores, cats)]


def evaluate_model(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationConfig,
    work_dir: Path,
    *,
    device: str = "cpu",
    progress: str | bool = "auto",
) -> TaskOutcome | None:
    """Run ``adapter`` over ``dataset``, stream detections into ``work_dir`` and evaluate them.

    Under ``torchrun`` (WORLD_SIZE > 1) images are sharded over ranks; rank 0 returns the
    outcome and the other ranks return None.
    """
    wall_start = time.perf_counter()
    engine = str(_value(cfg.engine))
    check_label_map(adapter, dataset)  # before any image is read
    rank, world = D.init_distributed()
    adapter.eval()
    stream = PredictionStream(work_dir, rank)
    all_ids = dataset.image_ids()
    meta = _meta(adapter, dataset)

    # Rank 0 decides what is left to do and tells the others, so every rank shards the same list.
    plan: dict[str, Any] | None = None
    if rank == 0:
        if not cfg.resume or not stream.matches(meta):
            if cfg.resume and any(Path(work_dir).glob("part-*.jsonl")):
                log.warning(
                    "%s: predictions there belong to another model or dataset; starting afresh", work_dir
                )
            stream.reset(meta)
        done, _ = stream.read()
        wanted = set(all_ids)
        resumed = sorted(set(done) & wanted)
        plan = {"pending": [i for i in all_ids if i not in done], "resumed": len(resumed)}
    plan = D.broadcast_object(plan)
    assert plan is not None
    pending: list[int] = plan["pending"]
    mine = D.shard(pending, rank, world)
    if plan["resumed"] and rank == 0:
        log.info(
            "%s: resuming, %d of %d images already done", adapter.spec.name, plan["resumed"], len(all_ids)
        )

    items = [(i, dataset.image_path(i)) for i in mine]
    desc = f"{adapter.spec.name} eval" + (f" [rank {rank}/{world}]" if world > 1 else "")
    with (
        stream,
        Progress(
            len(all_ids), desc, enabled=progress if rank == 0 else False, initial=plan["resumed"]
        ) as bar,
    ):
        forward_s, max_dets, _ = _infer(adapter, items, stream, cfg, device, bar)
    # Every rank's timing and detection count reach rank 0 with the predictions.
    stats = [forward_s, max_dets]
    if world > 1:
        gathered: list[Any] = [None] * world if rank == 0 else []
        torch.distributed.gather_object(stats, gathered if rank == 0 else None, dst=0)
        D.barrier()
    else:
        gathered = [stats]
    if rank != 0:
        return None
    forward_total = sum(g[0] for g in gathered)
    return _evaluate_streamed(
        adapter, dataset, cfg, stream, engine, all_ids, plan["resumed"], forward_total,
        max(g[1] for g in gathered), wall_start, world,
    )  # fmt: skip


def _evaluate_streamed(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationConfig,
    stream: PredictionStream,
    engine: str,
    all_ids: list[int],
    resumed: int,
    forward_s: float,
    max_dets_now: int,
    wall_start: float,
    world: int,
) -> TaskOutcome:
    done, failed = stream.read()
    wanted = set(all_ids)
    ok_ids = sorted(set(done) & wanted)
    failed_ids = sorted(set(failed) & wanted)
    observed = max((len(done[i]) for i in ok_ids), default=max_dets_now)
    detections = [d for i in ok_ids for d in rows_to_coco(i, done.pop(i))]
    del done  # one copy of the detections in memory, not two
    merged = stream.write_merged(detections)
    dets_per_image = adapter.spec.detections_per_image or observed
    info = dataset.info()
    setup = {
        "engine": engine,
        "batch_size": int(cfg.batch_size),
        "input_size": list(adapter.spec.input_size),
        "deviations": accuracy_deviations(
            info.name, info.num_images, info.generated, adapter.spec.input_size, int(cfg.batch_size)
        ),
        "detections_per_image": dets_per_image,
        "score_threshold": None,
        "timed": None,
    }
    counts = {
        "images_seen": metric("images_seen", len(ok_ids) + len(failed_ids)),
        "images_failed": metric("images_failed", len(failed_ids)),
        "images_skipped": metric("images_skipped", resumed),
    }
    details: dict[str, Any] = {
        "failed_images": [{"image_id": i, "error": failed[i]} for i in failed_ids],
        "predictions_file": str(merged),
        "forward_time_s": round(forward_s, 4),  # summed over ranks under torchrun
        "num_detections": len(detections),
        "max_detections_per_image_observed": observed,
        "world_size": world,
        "resumed_images": resumed,
    }
    notes: list[str] = []
    if failed_ids:
        notes.append(
            f"WARNING: {len(failed_ids)} of {len(all_ids)} images could not be read and are left out of the "
            f"evaluation (first: {failed_ids[0]}: {failed[failed_ids[0]]}); AP is over the other images"
        )
    fraction = len(failed_ids) / max(1, len(all_ids))
    if fraction > cfg.max_failed_fraction:
        details["wall_time_s"] = round(time.perf_counter() - wall_start, 4)
        return TaskOutcome(
            task="evaluation",
            key=engine,
            metrics=counts,
            details=details,
            setup=setup,
            dataset=info,
            status="failed",
            reason=(
                f"{len(failed_ids)} of {len(all_ids)} images unreadable ({fraction:.1%} > "
                f"evaluation.max_failed_fraction={cfg.max_failed_fraction}); see details.failed_images"
            ),
            notes=notes,
        )
    if not ok_ids:
        raise DfineBenchError(f"no image of dataset {dataset.name!r} could be evaluated")
    if not detections:
        raise DfineBenchError(
            f"model {adapter.spec.name!r} produced no detections on any of {len(ok_ids)} images; "
            "nothing to evaluate"
        )
    # The dicts were built here and are not used again: the engine may have them uncopied.
    result = run_engine(dataset.annotations, detections, engine=engine, image_ids=ok_ids, copy_input=False)
    metrics, stat_notes = coco_metrics(result)
    metrics.update(counts)
    details.update(result_details(result, dataset.category_names()))
    if not cfg.per_category:
        details.pop("per_category_ap", None)
    if not cfg.pr_curves:
        details.pop("pr_curve", None)
    details["wall_time_s"] = round(time.perf_counter() - wall_start, 4)
    return TaskOutcome(
        task="evaluation",
        key=engine,
        metrics=metrics,
        details=details,
        setup=setup,
        dataset=info,
        notes=notes + stat_notes,
    )
