"""Evaluation performance figures: pipeline efficiency, engine speed, memory vs. number of images.

Prints three things (each can be run alone with ``--part``):

* ``pipeline``: D-FINE-N (random-init weights: the speed is real, the AP is not) on CPU at
  640x640 over generated images: time inside the model's forward / wall time of the whole
  ``evaluate_model`` call (loading, preprocessing, postprocessing, streaming, COCO engine).
  Target: at least 0.85.
* ``engines``: a COCO-val-sized evaluation (5000 images, ~36k boxes, 100 detections per
  image, synthetic): faster-coco-eval vs pycocotools, each in its own child process, timed in
  the same run; seconds, ratio, and each child's peak RSS growth while evaluating.
* ``memory``: peak RSS of the streaming inference phase for growing numbers of images
  (the rule-based test detector keeps this cheap); it should stay flat.

    python benchmarks/bench_evaluation.py --part all
    python benchmarks/bench_evaluation.py --part pipeline --images 200 --threads 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from eval_synthetic import make_annotations, make_detections

from dfine_bench.config.settings import DatasetSettings, EvaluationSettings
from dfine_bench.data import resolve_dataset
from dfine_bench.evaluation import evaluate_model, run_engine
from dfine_bench.records.environment import cpu_model

TESTS_EVAL = Path(__file__).resolve().parents[1] / "tests" / "evaluation"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# -- pipeline efficiency ----------------------------------------------------------------------
def pipeline(images: int, threads: int, workers: int, batch_size: int, cache: Path) -> dict[str, Any]:
    from dfine_bench.adapters import create_model

    torch.set_num_threads(threads)
    ds = resolve_dataset(DatasetSettings(kind="generated", num_images=images, seed=0), cache)
    adapter = create_model("dfine_n")  # random-init: the timing is real, the AP is not
    cfg = EvaluationSettings(batch_size=batch_size, num_workers=workers, resume=False)
    with tempfile.TemporaryDirectory() as work:
        out = evaluate_model(adapter, ds, cfg, Path(work), progress=False)[0]
    d = out.details
    return {
        "model": "dfine_n (random-init)",
        "input": "640x640",
        "images": images,
        "batch_size": batch_size,
        "num_workers": workers,
        "threads": threads,
        "forward_s": d["forward_time_s"],
        "wall_s": d["wall_time_s"],
        "engine_s": d["engine_time_s"],
        "efficiency": d["forward_time_s"] / d["wall_time_s"],
        "detections_per_image": out.setup["detections_per_image"],
    }


# -- engines ----------------------------------------------------------------------------------
def _engine_child(engine: str, ann: str, dets_file: str, queue: Any) -> None:
    dets = json.loads(Path(dets_file).read_text())
    base = rss_mib()
    start = time.perf_counter()
    result = run_engine(Path(ann), dets, engine=engine)
    seconds = time.perf_counter() - start
    queue.put(
        {"engine": engine, "seconds": seconds, "peak_growth_mib": max_rss_mib() - base, "stats": result.stats}
    )


def engines(num_images: int, per_image: int, cache: Path) -> dict[str, Any]:
    cache.mkdir(parents=True, exist_ok=True)
    ann = make_annotations(cache / f"val_like_{num_images}.json", num_images=num_images)
    dets = make_detections(ann, per_image=per_image)
    dets_file = cache / f"dets_{num_images}_{per_image}.json"
    dets_file.write_text(json.dumps(dets))
    n_gt = len(json.loads(ann.read_text())["annotations"])
    ctx = mp.get_context("spawn")
    results = {}
    for engine in ("faster_coco_eval", "pycocotools"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_engine_child, args=(engine, str(ann), str(dets_file), queue))
        proc.start()
        results[engine] = queue.get()
        proc.join()
    fast, ref = results["faster_coco_eval"], results["pycocotools"]
    max_diff = max(abs(fast["stats"][k] - ref["stats"][k]) for k in fast["stats"])
    return {
        "images": num_images,
        "gt_boxes": n_gt,
        "detections": len(dets),
        "faster_coco_eval_s": fast["seconds"],
        "pycocotools_s": ref["seconds"],
        "speedup": ref["seconds"] / fast["seconds"],
        "faster_coco_eval_peak_growth_mib": fast["peak_growth_mib"],
        "pycocotools_peak_growth_mib": ref["peak_growth_mib"],
        "max_stat_difference": max_diff,
        "AP_faster_coco_eval": fast["stats"]["AP"],
    }


# -- memory vs. number of images ----------------------------------------------------------------
def _memory_child(n: int, cache: str, queue: Any) -> None:
    sys.path.insert(0, str(TESTS_EVAL))
    from eval_tiny_adapter import TinyAdapter

    torch.set_num_threads(1)
    ds = resolve_dataset(DatasetSettings(kind="generated", num_images=n, seed=0), Path(cache))
    ds.image_ids()  # annotations parsed before the baseline: they are part of the dataset, not the loop
    from dfine_bench.evaluation.predictions import PredictionStream

    peak = {"inference": 0.0}
    stop = threading.Event()
    close = PredictionStream.close

    def close_and_mark(self: PredictionStream) -> None:  # the streaming phase ends when its file closes
        close(self)
        stop.set()

    PredictionStream.close = close_and_mark  # type: ignore[method-assign]

    def poll() -> None:
        while not stop.is_set():
            peak["inference"] = max(peak["inference"], rss_mib())
            time.sleep(0.005)

    with tempfile.TemporaryDirectory() as work:
        base = rss_mib()
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        cfg = EvaluationSettings(batch_size=8, num_workers=1)
        evaluate_model(TinyAdapter(), ds, cfg, Path(work), progress=False)
        stop.set()
        t.join()
    queue.put(
        {"images": n, "inference_peak_growth_mib": peak["inference"] - base, "total_peak_mib": max_rss_mib()}
    )


def memory(sizes: list[int], cache: Path) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    rows = []
    for n in sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_memory_child, args=(n, str(cache), queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("pipeline", "engines", "memory", "all"), default="all")
    p.add_argument("--images", type=int, default=200, help="pipeline: images (at least 200 for the figure)")
    p.add_argument("--threads", type=int, default=1, help="pipeline: torch threads for the model")
    p.add_argument("--workers", type=int, default=1, help="pipeline: DataLoader workers")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--engine-images", type=int, default=5000)
    p.add_argument("--per-image", type=int, default=100, help="engines: detections per image")
    p.add_argument("--memory-sizes", default="250,1000,4000", help="memory: comma-separated image counts")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "dfine_bench_eval_bench")
    args = p.parse_args()
    print(f"# device: CPU {cpu_model()} ({os.cpu_count()} cores visible), torch {torch.__version__}")
    print("# data: generated / synthetic (not COCO); model weights: random-init")
    if args.part in ("pipeline", "all"):
        r = pipeline(args.images, args.threads, args.workers, args.batch_size, args.cache)
        print(f"pipeline: {json.dumps(r)}")
        print(f"pipeline efficiency (forward / wall) = {r['efficiency']:.3f}  (target >= 0.85)")
    if args.part in ("engines", "all"):
        r = engines(args.engine_images, args.per_image, args.cache)
        print(f"engines: {json.dumps(r)}")
        print(
            f"engine time: faster-coco-eval {r['faster_coco_eval_s']:.2f} s, "
            f"pycocotools {r['pycocotools_s']:.2f} s, "
            f"ratio {r['speedup']:.2f}x; max |stat difference| {r['max_stat_difference']:.2e}"
        )
    if args.part in ("memory", "all"):
        rows = memory([int(s) for s in args.memory_sizes.split(",")], args.cache)
        for row in rows:
            print(f"memory: {json.dumps(row)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
