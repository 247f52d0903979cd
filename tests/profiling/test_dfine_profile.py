"""D-FINE through the profiler (slow): paper-style params/GFLOPs and a short CPU latency run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dfine_bench.config.schema import BackendConfig
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.profiling import profile_model
from dfine_bench.profiling.complexity import complexity

pytestmark = pytest.mark.slow


def _dfine(name: str, **options: object):
    from dfine_bench.adapters.registry import list_models

    if name not in list_models():
        pytest.skip(f"{name} is not registered (dfine_bench/adapters/dfine.py not available)")
    from dfine_bench.adapters import create_model

    return create_model(name, weights="random-init", **options)


def test_dfine_n_params_and_gflops_match_the_paper_after_rounding() -> None:
    torch.set_num_threads(2)
    out = complexity(_dfine("dfine_n"), (640, 640))
    assert round(out.metrics["params"].value) == 4
    assert round(out.metrics["gflops"].value) == 7
    assert out.details["deploy_fused_blocks"]  # RepVGG blocks were re-parameterised
    assert out.details["params_counted"] < out.details["params_total"]  # training-only heads left out


def test_dfine_n_latency_on_cpu(tmp_path: Path) -> None:
    adapter = _dfine("dfine_n", input_size=[320, 320])
    cfg = ProfileSettings(
        warmup=1,
        iters=4,
        min_iters=3,
        max_time_s=5,
        batch_sizes=[1],
        throughput_iters=2,
        complexity=False,
        threads=2,
    )
    outs = profile_model(adapter, cfg, BackendConfig(), device="cpu", work_dir=tmp_path)
    lat = next(o for o in outs if o.task == "latency")
    assert lat.status == "ok"
    assert len(lat.details["samples_ms"]) >= 3
    assert "input 320x320, not 640x640" in lat.setup["deviations"]
    thr = next(o for o in outs if o.task == "throughput")
    assert thr.details["by_batch_size"][0]["status"] == "ok"
