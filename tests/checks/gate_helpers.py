"""Shared constants and helpers of the regression-gate tests (see conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

PLUGIN_SITE = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_site"
TOY_MODELS = ("toy_det", "toy_det_b", "toy_det_slow", "toy_det_color")

#: A quick run (the toy_quick test suite): one thread, eager at batch 1 and 2, more timed calls.
QUICK = [
    "--suites-dir",
    str(Path(__file__).resolve().parents[1] / "fixtures" / "suites"),
    "suite=toy_quick",
    "profiling.warmup=2",
    "profiling.iters=12",
    "profiling.min_iters=12",
    "profiling.max_time_s=30",
    "profiling.batch_sizes=[1,2]",
    "profiling.throughput_iters=3",
    "profiling.threads=1",
]
#: Evaluation and params/GFLOPs only (for gates on accuracy and complexity).
NO_TIMING = ["profiling.latency=false", "profiling.throughput=false"]

RunFn = Callable[..., Path]


def copy_run(run_dir: Path, name: str) -> Path:
    """A copy of a run folder to modify (an injected fault)."""
    dest = run_dir.parent / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest
