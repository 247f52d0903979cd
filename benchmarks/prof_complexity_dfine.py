"""Params and GFLOPs of D-FINE N/S/M/L/X at 1x3x640x640 beside the paper's numbers.

Counts as ``dfine_bench.profiling.complexity`` does (the official get_info.py's way: calflops
on the deploy-mode model) with random-init weights (counts do not depend on the values).

    python benchmarks/prof_complexity_dfine.py
"""

from __future__ import annotations

import sys

import torch

from dfine_bench.profiling.complexity import complexity

#: README / paper numbers (params M, GFLOPs); S and M also have one decimal in the paper.
PAPER = {
    "dfine_n": (4, 7),
    "dfine_s": (10.2, 25.2),
    "dfine_m": (19.2, 56.6),
    "dfine_l": (31, 91),
    "dfine_x": (62, 202),
}


def main() -> int:
    from dfine_bench.adapters import create_model

    torch.set_num_threads(2)
    print(
        f"{'model':8} {'params M':>9} {'paper':>6} {'GFLOPs':>8} {'paper':>6} "
        f"{'torch GFLOPs':>13}  rounded match"
    )
    ok = True
    for name, (p_params, p_gflops) in PAPER.items():
        adapter = create_model(name, weights="random-init")
        out = complexity(adapter, (640, 640))
        params, gflops = out.metrics["params"].value, out.metrics["gflops"].value
        match = round(params) == round(p_params) and round(gflops) == round(p_gflops)
        ok &= match
        print(
            f"{name:8} {params:9.3f} {p_params:6} {gflops:8.2f} {p_gflops:6} "
            f"{out.metrics['gflops_torch'].value:13.2f}  {'yes' if match else 'NO'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
