"""Issue 19: params/GFLOPs are counted at each model's own input size, not one global size.

A model whose native size is not 640x640 (RF-DETR runs at 560x560) was counted at the global
``profiling.flops_input_size`` and failed its complexity record. Now the size is the model's own
(``adapter.spec.input_size``) unless the user sets ``profiling.flops_input_size``; the run plan
keys the complexity record by the same size, so the record written is the one planned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfine_bench.adapters import ModelSpec, registry
from dfine_bench.cli import main
from dfine_bench.config.settings import ProfileSettings

TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
NAME = "toy_det_560"
#: A complexity-only run of one model: no evaluation, no timings.
COMPLEXITY_ONLY = [
    "--suites-dir",
    str(TOY_SUITES),
    "suite=toy_quick",
    f"suite.models=[{NAME}]",
    "evaluation.enabled=false",
    "profiling.latency=false",
    "profiling.throughput=false",
    "profiling.stages=false",
]


@pytest.fixture
def model_560(plugin_site: Path) -> Iterator[str]:
    """The toy plug-in family registered again at a native size of 560x560 (as RF-DETR)."""
    import toy_detectors

    spec = ModelSpec(name=NAME, family="toy", input_size=(560, 560), num_classes=80, detections_per_image=30)
    registry.register_model(spec, toy_detectors._factory, origin="test")
    yield NAME
    registry.unregister_model(NAME)


def _complexity_records(run_dir: Path) -> list[dict]:
    records = [json.loads(p.read_text()) for p in sorted((run_dir / "records").glob("*.json"))]
    return [r for r in records if r["task"] == "complexity"]


def test_the_flops_size_is_the_models_own_unless_set() -> None:
    assert ProfileSettings().flops_input_size is None  # the schema's default: no global size
    assert ProfileSettings().flops_size((560, 560)) == (560, 560)
    assert ProfileSettings(flops_input_size=(640, 640)).flops_size((560, 560)) == (640, 640)


def test_a_model_with_its_own_input_size_is_counted_at_it(cli_env: Path, model_560: str) -> None:
    code = main(["run", *COMPLEXITY_ONLY, "profiling.flops_input_size=null", "output.run_id=native"])
    assert code == 0
    (rec,) = _complexity_records(cli_env / "results" / "native")
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["record_id"] == f"complexity-{model_560}-560x560"  # the planned record, at 560x560
    assert rec["setup"]["input_size"] == [560, 560]
    assert rec["metrics"]["params"]["value"] > 0 and rec["metrics"]["gflops_torch"]["value"] > 0


def test_a_flops_size_the_user_sets_wins(cli_env: Path, model_560: str) -> None:
    code = main(["run", *COMPLEXITY_ONLY, "profiling.flops_input_size=[64,64]", "output.run_id=set"])
    assert code == 0
    (rec,) = _complexity_records(cli_env / "results" / "set")
    assert rec["status"] == "ok" and rec["record_id"] == f"complexity-{model_560}-64x64"
