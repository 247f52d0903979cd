"""Params and GFLOPs of D-FINE N/S/M/L/X at 1x3x640x640 beside the official tool's and the paper's.

Counts as ``dfine_bench.profiling.complexity`` does (the official get_info.py's way: calflops
on the deploy-mode model, attention as ``nn.MultiheadAttention`` computes it) with random-init
weights (counts do not depend on the values), and checks each size against

* ``OFFICIAL_GET_INFO``: what Peterande/D-FINE's ``tools/benchmark/get_info.py`` prints for the
  official model (commit 4a1f73a, YAML configs ``dfine_hgnetv2_{n,s,m,l,x}_coco.yml``, random
  init, ``deploy()``, calflops 0.3.2, torch 2.13 on CPU; run outside this project). Its params
  are ``sum(p.numel())`` over the deploy model, which still holds the training-only denoising
  class embedding (``(num_classes + 1) x hidden_dim``); ours counts it too and must be equal;
* ``PAPER``: the README's rounded numbers (S and M also to one decimal in the paper's Table 7).

    python benchmarks/prof_complexity_dfine.py

Exits 1 unless every size has the official params exactly, is within 0.5 % of the official GFLOPs
and rounds to the README.
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

#: (params of the deploy model, FLOPs) printed by the official get_info.py (see the module docstring).
OFFICIAL_GET_INFO = {
    "dfine_n": (3_753_799, 7_164_977_456),
    "dfine_s": (10_237_491, 25_171_350_256),
    "dfine_m": (19_248_189, 56_684_440_584),
    "dfine_l": (30_724_195, 91_034_417_712),
    "dfine_x": (61_601_635, 202_486_424_112),
}


def main() -> int:
    from dfine_bench.adapters import create_model

    torch.set_num_threads(2)
    print(
        f"{'model':8} {'params M':>9} {'official':>9} {'paper':>6} {'GFLOPs':>9} {'official':>9} "
        f"{'diff %':>8} {'paper':>6} {'torch GFLOPs':>13}  match"
    )
    ok = True
    for name, (p_params, p_gflops) in PAPER.items():
        adapter = create_model(name, weights="random-init")
        out = complexity(adapter, (640, 640))
        params, gflops = out.metrics["params"].value, out.metrics["gflops"].value
        o_params, o_flops = OFFICIAL_GET_INFO[name]
        o_gflops = o_flops / 1e9
        diff = 100.0 * (gflops - o_gflops) / o_gflops
        match = (
            abs(diff) < 0.5
            and round(params * 1e6) == o_params
            and round(params) == round(p_params)
            and round(gflops) == round(p_gflops)
            and round(gflops) == round(o_gflops)
        )
        ok &= match
        print(
            f"{name:8} {params:9.3f} {o_params / 1e6:9.3f} {p_params:6} {gflops:9.3f} {o_gflops:9.3f} "
            f"{diff:+8.4f} {p_gflops:6} {out.metrics['gflops_torch'].value:13.2f}  {'yes' if match else 'NO'}"
        )
    print(
        "params: the official count exactly (the deploy model, denoising class embedding included)."
        "\nD-FINE-M: the official tool gives 56.68 (README: 57); the paper's Table 7 says 56.6."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
