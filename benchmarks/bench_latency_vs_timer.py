"""Does our latency harness agree with ``torch.utils.benchmark.Timer``? (D-FINE-N, CPU, same run)

Times the same D-FINE-N forward (random-init weights, fixed input, batch 1) with
``dfine_bench.profiling.time_callable`` and with ``torch.utils.benchmark.Timer``,
interleaved in rounds so machine drift hits both alike, and prints both medians and their
relative difference; exits 1 when they differ by more than ``--tolerance`` (default 5%).

    python benchmarks/bench_latency_vs_timer.py --size 640 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.utils.benchmark as tbench

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.profiling import time_callable
from dfine_bench.records.environment import device_name


def compare(
    adapter: DetectorAdapter, *, size: int, rounds: int, iters: int, threads: int
) -> dict[str, float]:
    """Median latency (ms) by both timers over ``rounds`` interleaved rounds of ``iters`` calls."""
    torch.set_num_threads(threads)
    module = adapter.export_module().eval()
    x = adapter.example_input(1, (size, size))

    def call() -> None:
        with torch.inference_mode():
            module(x)

    # Timer reports one mean per block of calls; compare like with like: the median over rounds
    # of each tool's per-round mean (and, for information, our per-call median)
    ours, ours_rounds, theirs = [], [], []
    timer = tbench.Timer(stmt="call()", globals={"call": call}, num_threads=threads)
    for _ in range(rounds):
        m = time_callable(call, warmup=2, iters=iters, min_iters=iters, max_time_s=1e9, device="cpu")
        ours.extend(m.samples_ms)
        ours_rounds.append(m.mean)
        # Timer reports seconds per run; `timeit(n)` runs n calls in one block
        t = timer.timeit(iters)
        theirs.append(t.median * 1000.0)
    ours_median = statistics.median(ours_rounds)
    theirs_median = statistics.median(theirs)
    return {
        "ours_median_ms": ours_median,
        "ours_per_call_median_ms": statistics.median(ours),
        "timer_median_ms": theirs_median,
        "relative_difference": abs(ours_median - theirs_median) / theirs_median,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dfine_n")
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=0.05)
    args = p.parse_args()
    from dfine_bench.adapters import create_model

    adapter = create_model(args.model, weights="random-init", input_size=[args.size, args.size])
    r = compare(adapter, size=args.size, rounds=args.rounds, iters=args.iters, threads=args.threads)
    print(
        f"{args.model} random-init, {args.size}x{args.size}, batch 1, "
        f"{args.threads} thread(s), {device_name('cpu')}"
    )
    print(f"  dfine_bench time_callable       : {r['ours_median_ms']:.2f} ms (median of round means)")
    print(f"  torch.utils.benchmark.Timer     : {r['timer_median_ms']:.2f} ms (median of block means)")
    print(f"  dfine_bench per-call median     : {r['ours_per_call_median_ms']:.2f} ms")
    print(
        f"  relative difference             : {r['relative_difference']:.2%} (tolerance {args.tolerance:.0%})"
    )
    return 0 if r["relative_difference"] <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
