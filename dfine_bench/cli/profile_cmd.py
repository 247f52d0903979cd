"""``dfine-bench profile``: params, GFLOPs, latency and throughput alone (no evaluation)."""

from __future__ import annotations

import argparse

from dfine_bench.cli.run_cmd import _groups_epilog, add_common
from dfine_bench.cli.run_cmd import main as run_main

#: What makes `profile` a profiling-only run; the user's own overrides come after and win.
PROFILE_PRESET = ["evaluation.enabled=false", "suite.report=false"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="profile models only: params, GFLOPs, latency, throughput, memory, traces",
        description=(
            "Profile without evaluating: `dfine-bench profile model=dfine_n backend=onnxruntime "
            "device=cpu`. Takes the same Hydra overrides as `run` (it is `run` with "
            f"{' '.join(PROFILE_PRESET)}). Add profiling.trace=true for TensorBoard traces, "
            "protocol=paper_t4 for the paper's TensorRT FP16 latency protocol."
        ),
        epilog=_groups_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(p)
    p.set_defaults(func=run_main, preset_overrides=PROFILE_PRESET)
