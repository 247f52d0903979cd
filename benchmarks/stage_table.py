"""Per-stage latency table (ms, medians of each stage timed on its own) for models and backends.

    python benchmarks/stage_table.py --models dfine_n dfine_s --backends eager onnxruntime

Random-init weights (the speed of a forward pass does not depend on the weights' values) on a
fixed seeded 640x640 image; prints a markdown table with each measurement's validity (CV, load per
core) so a number from a busy machine says so. Each backend runs twice: the model graph
(``profiling.timed=model``: the postprocessor timed on its own) and the deploy graph
(``model+postprocess``: the postprocessor inside the graph, as the paper's engine; its cell says
"in forward").
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
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
    ap.add_argument("--timed", nargs="+", default=["model", "model+postprocess"])
    args = ap.parse_args()
    base = ProfileSettings(
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
    head = ["model", "backend", "graph", *STAGES, f"total ({args.protocol})", "latency median", "validity"]
    print(f"CPU: {cpu_model()}, {args.threads} threads, torch {torch.__version__}, random-init weights\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            adapter = create_model(name, weights="random-init")
            for backend, timed in itertools.product(args.backends, args.timed):
                settings = dataclasses.replace(base, timed=timed)
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
                    print(f"| {name} | {backend} | {timed} | {lat.status}: {lat.reason} |")
                    continue
                by = lat.details["stages"]["by_stage"]
                cells = [_cell(by[s]) for s in STAGES]
                v = lat.details["validity"]
                c = v["contention"]
                wait = c.get("cpu_wait")
                busy = f"CPU wait {wait:.1%}" if wait is not None else f"load/core {c['load_per_core']:.2f}"
                verdict = f"{v['status']} (CV {v['cv']:.2f}, {busy})"
                total = lat.details["stages"]["total_ms"]
                median = lat.metrics["latency_median"].value
                row = [name, backend, lat.setup.get("extra", {}).get("graph", "model"), *cells]
                row += [f"{total:.2f}", f"{median:.2f}", verdict]
                print("| " + " | ".join(row) + " |")


def _cell(stage: dict) -> str:
    if stage["status"] == "ok":
        return f"{stage['summary']['median_ms']:.2f}"
    return stage["status"] if str(stage["status"]).startswith("in ") else "not measured"


if __name__ == "__main__":
    main()
