"""The inference driver: images -> model (through a backend) -> detections streamed to disk -> evaluators.

DataLoader workers decode and preprocess while the model runs; each finished batch's
detections are appended to the predictions folder at once, so an interrupted run resumes
where it stopped. Detections are exactly what the adapter's official postprocessor keeps
(D-FINE/RT-DETR: top 300, no threshold); nothing is re-capped or thresholded here.

Once every image is done (under ``torchrun``: every rank's shard), rank 0 replays the stored
detections, image by image, to every configured evaluator (``evaluation.evaluators``, see
``registry``): images finished in an earlier, interrupted session reach them too. The driver
knows nothing about what they compute; each result becomes one record. With several
``evaluation.backends`` the inference runs once per backend, each into its own predictions folder.

An unreadable image is counted, recorded and left out of the evaluated image set (with a
loud note); more than ``evaluation.max_failed_fraction`` of them fails the evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.backends import BackendSpec
from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.errors import BackendUnavailable, DfineBenchError
from dfine_bench.evaluation import distributed as D
from dfine_bench.evaluation.evaluator import CompositeEvaluator, EvaluatorContext, EvaluatorResult, ImageInput
from dfine_bench.evaluation.inference import infer_shard
from dfine_bench.evaluation.inference_backend import EvalBackend, Forward, make_forward, resolve_eval_backends
from dfine_bench.evaluation.labelmap import check_label_map
from dfine_bench.evaluation.predictions import PredictionStream, rows_to_coco
from dfine_bench.evaluation.registry import RegisteredEvaluator, check_evaluators, create_evaluator
from dfine_bench.profiling.protocols import accuracy_deviations
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import TaskOutcome
from dfine_bench.utils.progress import Progress

log = logging.getLogger(__name__)

#: Images handed to the evaluators per ``process`` call when stored detections are replayed.
_REPLAY_CHUNK = 64


def _meta(adapter: DetectorAdapter, dataset: ResolvedDataset, backend: EvalBackend) -> dict[str, Any]:
    """What the streamed predictions belong to; a mismatch means they are not reused."""
    info = dataset.info()
    meta = {
        "model": adapter.spec.name,
        "weights": adapter.weights.label,
        "weights_sha256": adapter.weights.sha256,
        "input_size": list(adapter.spec.input_size),
        "annotations_sha256": info.annotations_sha256,
        "images_root": info.images_root,
    }
    if not backend.is_reference:  # the reference keeps the meta (and so the resumable folders) of before
        meta["backend"] = backend.key
    return meta


def record_key(base: str, backend: EvalBackend) -> str:
    """An evaluator's record key under ``backend``; the reference (eager fp32) keeps the plain key."""
    return base if backend.is_reference else f"{base}-{backend.key}"


def planned_outcomes(cfg: EvaluationSettings, backends: Sequence[BackendSpec] = ()) -> list[tuple[str, str]]:
    """(task, key) of every record an evaluation with these settings writes, in order.

    Checks ``evaluation.evaluators`` and ``evaluation.backends`` against their registries (a
    ``ConfigError`` naming the entry): call it at start-up. ``backends``: the run's backend configs.
    """
    entries = check_evaluators(list(cfg.evaluators))
    return [
        (e.task, record_key(e.key(cfg), b)) for b in resolve_eval_backends(cfg, backends) for e in entries
    ]


def evaluate_model(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationSettings,
    work_dir: Path,
    *,
    device: str = "cpu",
    progress: str | bool = "auto",
    backends: Sequence[BackendSpec] = (),
    artifacts_dir: Path | None = None,
) -> list[TaskOutcome]:
    """Run ``adapter`` over ``dataset`` through each of ``evaluation.backends``, stream detections into
    ``work_dir`` and hand them to every evaluator of ``evaluation.evaluators``.

    Returns every outcome, in ``planned_outcomes`` order (the first is the COCO record with the
    default settings). ``backends`` are the run's resolved backends (their options apply);
    ``artifacts_dir`` is where exported models are cached (the run folder, shared with profiling;
    default ``work_dir/artifacts``). Under ``torchrun`` (WORLD_SIZE > 1) images are sharded over
    ranks; rank 0 gets the outcomes, the others [].
    """
    wall_start = time.perf_counter()
    entries = check_evaluators(list(cfg.evaluators))
    eval_backends = resolve_eval_backends(cfg, backends)
    check_label_map(adapter, dataset)  # before any image is read
    rank, _ = D.init_distributed()
    adapter.eval()
    collected: list[TaskOutcome] = []
    for backend in eval_backends:
        folder = Path(work_dir) if backend.is_reference else Path(work_dir) / backend.key
        try:
            forward, info = make_forward(
                adapter,
                backend,
                device=device,
                artifacts_dir=Path(artifacts_dir) if artifacts_dir else Path(work_dir) / "artifacts",
                max_batch_size=max(1, int(cfg.batch_size)),
            )
            got = _run_backend(
                adapter, dataset, cfg, folder, entries, backend, forward, info, device, progress
            )
        except BackendUnavailable as exc:  # this machine cannot run it: a skip, the other backends go on
            log.warning("evaluation through %s skipped: %s", backend.key, exc)
            got = _not_run(entries, cfg, backend, "skipped", str(exc))
        except (KeyboardInterrupt, SystemExit):
            raise
        except DfineBenchError as exc:
            if len(eval_backends) == 1:
                raise
            log.error("evaluation through %s failed: %s", backend.key, exc)
            got = _not_run(entries, cfg, backend, "failed", str(exc))
        if rank == 0:
            for o in got:
                o.details.setdefault("wall_time_s", round(time.perf_counter() - wall_start, 4))
            collected.extend(got)
        wall_start = time.perf_counter()
    return collected if rank == 0 else []


def _not_run(
    entries: Sequence[RegisteredEvaluator],
    cfg: EvaluationSettings,
    backend: EvalBackend,
    status: str,
    reason: str,
) -> list[TaskOutcome]:
    setup = {"backend": backend.spec.name, "dtype": backend.spec.dtype}
    return [
        TaskOutcome(
            task=e.task, key=record_key(e.key(cfg), backend), setup=dict(setup), status=status, reason=reason
        )
        for e in entries
    ]


def _run_backend(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationSettings,
    work_dir: Path,
    entries: Sequence[RegisteredEvaluator],
    backend: EvalBackend,
    forward: Forward,
    backend_info: dict[str, Any],
    device: str,
    progress: str | bool,
) -> list[TaskOutcome]:
    """One backend's inference (resumable, sharded) and, on rank 0, its evaluation."""
    rank, world = D.rank_and_world()
    stream = PredictionStream(work_dir, rank)
    all_ids = dataset.image_ids()
    meta = _meta(adapter, dataset, backend)

    # Rank 0 decides what is left to do and tells the others, so every rank shards the same list.
    plan = D.broadcast_object(_pending(cfg, stream, meta, work_dir, all_ids) if rank == 0 else None)
    assert plan is not None
    pending: list[int] = plan["pending"]
    mine = D.shard(pending, rank, world)
    if plan["resumed"] and rank == 0:
        log.info(
            "%s: resuming, %d of %d images already done", adapter.spec.name, plan["resumed"], len(all_ids)
        )

    items = [(i, dataset.image_path(i)) for i in mine]
    label = "" if backend.is_reference else f" {backend.key}"
    desc = f"{adapter.spec.name} eval{label}" + (f" [rank {rank}/{world}]" if world > 1 else "")
    with (
        stream,
        Progress(
            len(all_ids), desc, enabled=progress if rank == 0 else False, initial=plan["resumed"]
        ) as bar,
    ):
        forward_s, max_dets, _ = infer_shard(
            adapter, items, stream, cfg, device, bar, forward, read=dataset.reader()
        )
    gathered = _gather([forward_s, max_dets], rank, world)
    if rank != 0:
        return []
    forward_total = sum(g[0] for g in gathered)
    return _evaluate_streamed(
        adapter, dataset, cfg, stream, entries, backend, backend_info, all_ids, plan["resumed"],
        forward_total, max(g[1] for g in gathered), world,
    )  # fmt: skip


def _pending(
    cfg: EvaluationSettings,
    stream: PredictionStream,
    meta: dict[str, Any],
    work_dir: Path,
    all_ids: list[int],
) -> dict[str, Any]:
    """Rank 0's plan: the images left to infer and how many were resumed (predictions of another
    model or dataset, or ``evaluation.resume=false``: start afresh)."""
    if not cfg.resume or not stream.matches(meta):
        if cfg.resume and any(Path(work_dir).glob("part-*.jsonl")):
            log.warning("%s: predictions there belong to another model or dataset; starting afresh", work_dir)
        stream.reset(meta)
    done, _ = stream.read()
    resumed = sorted(set(done) & set(all_ids))
    return {"pending": [i for i in all_ids if i not in done], "resumed": len(resumed)}


def _gather(stats: list[Any], rank: int, world: int) -> list[Any]:
    """Every rank's timing and detection count, on rank 0 (with the predictions); [] elsewhere."""
    if world <= 1:
        return [stats]
    gathered: list[Any] = [None] * world if rank == 0 else []
    torch.distributed.gather_object(stats, gathered if rank == 0 else None, dst=0)
    D.barrier()
    return gathered


def _replay(
    done: dict[int, list[list[float]]], ok_ids: list[int]
) -> Iterator[tuple[list[ImageInput], list[list[list[float]]]]]:
    """The stored detections in chunks of images; each image's rows are handed over once, then dropped."""
    for start in range(0, len(ok_ids), _REPLAY_CHUNK):
        chunk = ok_ids[start : start + _REPLAY_CHUNK]
        yield [ImageInput(i) for i in chunk], [done.pop(i) for i in chunk]


def _setup(
    adapter: DetectorAdapter, cfg: EvaluationSettings, backend: EvalBackend, info: Any, dets_per_image: int
) -> dict[str, Any]:
    """The evaluation record's setup; the reference (eager fp32) keeps the runner's default
    setup.backend/dtype, as before."""
    setup: dict[str, Any] = (
        {} if backend.is_reference else {"backend": backend.spec.name, "dtype": backend.spec.dtype}
    )
    return setup | {
        "batch_size": int(cfg.batch_size),
        "input_size": list(adapter.spec.input_size),
        "deviations": accuracy_deviations(
            info.name, info.num_images, info.generated, adapter.spec.input_size, int(cfg.batch_size)
        ),
        "detections_per_image": dets_per_image,
        "score_threshold": None,
        "timed": None,
    }


def _too_many_failed(cfg: EvaluationSettings, failed: int, total: int) -> str | None:
    """The reason the evaluation fails when more images were unreadable than allowed, else None."""
    fraction = failed / max(1, total)
    if fraction <= cfg.max_failed_fraction:
        return None
    return (
        f"{failed} of {total} images unreadable ({fraction:.1%} > "
        f"evaluation.max_failed_fraction={cfg.max_failed_fraction}); see details.failed_images"
    )


def _check_evaluable(
    adapter: DetectorAdapter, dataset: ResolvedDataset, images: int, detections: int
) -> None:
    if not images:
        raise DfineBenchError(f"no image of dataset {dataset.name!r} could be evaluated")
    if not detections:
        raise DfineBenchError(
            f"model {adapter.spec.name!r} produced no detections on any of {images} images; "
            "nothing to evaluate"
        )


def _evaluate_streamed(
    adapter: DetectorAdapter,
    dataset: ResolvedDataset,
    cfg: EvaluationSettings,
    stream: PredictionStream,
    entries: Sequence[RegisteredEvaluator],
    backend: EvalBackend,
    backend_info: dict[str, Any],
    all_ids: list[int],
    resumed: int,
    forward_s: float,
    max_dets_now: int,
    world: int,
) -> list[TaskOutcome]:
    done, failed = stream.read()
    wanted = set(all_ids)
    ok_ids = sorted(set(done) & wanted)
    failed_ids = sorted(set(failed) & wanted)
    observed = max((len(done[i]) for i in ok_ids), default=max_dets_now)
    num_detections = sum(len(done[i]) for i in ok_ids)
    # The whole evaluation's detections as one results file (``dfine-bench evaluate`` reads it).
    merged = stream.write_merged([d for i in ok_ids for d in rows_to_coco(i, done[i])])
    dets_per_image = adapter.spec.detections_per_image or observed
    info = dataset.info()
    setup = _setup(adapter, cfg, backend, info, dets_per_image)
    counts = {
        "images_seen": metric("images_seen", len(ok_ids) + len(failed_ids)),
        "images_failed": metric("images_failed", len(failed_ids)),
        "images_skipped": metric("images_skipped", resumed),
    }
    details: dict[str, Any] = {
        "failed_images": [{"image_id": i, "error": failed[i]} for i in failed_ids],
        "predictions_file": str(merged),
        "forward_time_s": round(forward_s, 4),  # summed over ranks under torchrun
        "num_detections": num_detections,
        "max_detections_per_image_observed": observed,
        "world_size": world,
        "resumed_images": resumed,
    }
    if backend_info:
        details["backend_info"] = backend_info
    notes: list[str] = []
    if failed_ids:
        notes.append(
            f"WARNING: {len(failed_ids)} of {len(all_ids)} images could not be read and are left out of the "
            f"evaluation (first: {failed_ids[0]}: {failed[failed_ids[0]]}); AP is over the other images"
        )

    def outcome(entry: RegisteredEvaluator, result: EvaluatorResult) -> TaskOutcome:
        metrics = dict(result.metrics)
        if entry.task == "evaluation":  # the image counts belong to the accuracy record
            metrics.update(counts)
        return TaskOutcome(
            task=entry.task,
            key=record_key(entry.key(cfg), backend),
            metrics=metrics,
            details={**details, **result.details},
            setup={**setup, **result.setup},
            dataset=info,
            status=result.status,
            reason=result.reason,
            notes=notes + result.notes,
        )

    too_many = _too_many_failed(cfg, len(failed_ids), len(all_ids))
    if too_many:
        return [outcome(e, EvaluatorResult(status="failed", reason=too_many)) for e in entries]
    _check_evaluable(adapter, dataset, len(ok_ids), num_detections)
    context = EvaluatorContext(dataset=dataset, cfg=cfg)
    evaluators = CompositeEvaluator([create_evaluator(e.name, context) for e in entries])
    evaluators.reset()
    for inputs, outputs in _replay(done, ok_ids):
        evaluators.process(inputs, outputs)
    del done  # every image's rows now live in the evaluators only
    results = evaluators.evaluate()
    return [outcome(e, results[e.name]) for e in entries]
