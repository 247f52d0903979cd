"""Per-stage latency table (ms, medians of each stage timed on its own) for models and backends.

    python benchmarks/stage_table.py --models dfine_n dfine_s --backends eager onnxruntime

Random-init weights (the speed of a forward pass does not depend on the weights' values) on a
fixed seeded 640x640 image; prints a markdown table with each measurement's validity (CV, load per
core) so a number from a busy machine says so.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from dfine_bench.adapters import create_model
from dfine_bench.config.schema import BackendConfig
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.profiling import profile_model
from dfine_bench.profiling.stages import STAGES
from dfine_bench.records.environment import cpu_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["dfine_n", "dfine_s"])
    ap.add_argument("--backends", nargs="+", default=["eager", "onnxruntime"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--protocol", default="end_to_end")
    args = ap.parse_args()
    settings = ProfileSettings(
        warmup=2,
        iters=args.iters,
        min_iters=min(5, args.iters),
        max_time_s=60.0,
        batch_sizes=(1,),
        complexity=False,
        throughput=False,
        threads=args.threads,
        stage_iters=args.iters,
    )
    head = ["model", "backend", *STAGES, f"total ({args.protocol})", "latency median", "validity"]
    print(f"CPU: {cpu_model()}, {args.threads} threads, torch {torch.__version__}, random-init weights\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            adapter = create_model(name, weights="random-init")
            for backend in args.backends:
                outs = profile_model(
                    adapter,
                    settings,
                    BackendConfig(name=backend),
                    device="cpu",
                    work_dir=Path(tmp),
                    protocol=args.protocol,
                    progress=False,
                )
                lat = next(o for o in outs if o.task == "latency")
                if lat.status != "ok":
                    print(f"| {name} | {backend} | {lat.status}: {lat.reason} |")
                    continue
                by = lat.details["stages"]["by_stage"]
                cells = [
                    f"{by[s]['summary']['median_ms']:.2f}" if by[s]["status"] == "ok" else "not measured"
                    for s in STAGES
                ]
                v = lat.details["validity"]
                load = v["contention"]["load_per_core"]
                verdict = f"{v['status']} (CV {v['cv']:.2f}, load/core {load:.2f})"
                total = lat.details["stages"]["total_ms"]
                median = lat.metrics["latency_median"].value
                print(
                    f"| {name} | {backend} | {' | '.join(cells)} | {total:.2f} | {median:.2f} | {verdict} |"
                )


if __name__ == "__main__":
    main()
