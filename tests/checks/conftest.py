"""Fixtures for the regression-gate tests: the toy plug-in for a whole module, and tiny real runs.

Runs go through the real CLI (``dfine-bench run``) in this process with the toy models, so one
run takes a few seconds. Timing-sensitive runs use ``toy_det_slow`` (its latency is dominated by
a sleep, ``TOY_SLEEP_S``) at one thread: on a loaded 2-core machine a compute-bound toy's
latency can swing several-fold between two runs, which no gate can tell from a slowdown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_helpers import PLUGIN_SITE, QUICK, TOY_MODELS, RunFn

from dfine_bench.cli import main


@pytest.fixture(scope="module")
def toy_site() -> Iterator[Path]:
    """The toy adapter package on the path for a whole test module (like ``plugin_site``)."""
    from dfine_bench.adapters import registry

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(PLUGIN_SITE))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(PLUGIN_SITE), os.environ.get("PYTHONPATH", "")]))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.delenv("DFINE_BENCH_COCO", raising=False)
        registry.reload()
        registry._ensure_loaded()
        try:
            yield PLUGIN_SITE
        finally:
            for name in TOY_MODELS:
                registry.unregister_model(name)
            sys.modules.pop("toy_detectors", None)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate") / "results"


@pytest.fixture(scope="module")
def run_toy(toy_site: Path, results: Path) -> RunFn:
    """``run_toy(run_id, models, *overrides, expect=0, **toy_env)``: a real run; returns its folder."""

    def run(run_id: str, models: list[str], *overrides: str, expect: int = 0, **env: str) -> Path:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            code = main(
                [
                    "run",
                    f"suite.models=[{','.join(models)}]",
                    *QUICK,
                    *overrides,
                    f"output.results_dir={results}",
                    f"output.run_id={run_id}",
                ]
            )
        assert code == expect, f"run {run_id} exited {code}, not {expect}"
        return results / run_id

    return run


@pytest.fixture(scope="module")
def timing(run_toy: RunFn, results: Path) -> tuple[Path, Path]:
    """A toy_det_slow run at 20 ms per forward, with latency and throughput, and its baseline."""
    run_dir = run_toy("t_base", ["toy_det_slow"], TOY_SLEEP_S="0.02")
    out = results.parent / "baselines" / "timing.json"
    assert main(["baseline", "save", str(run_dir), "--out", str(out)]) == 0
    return run_dir, out
