"""The AP bootstrap: exact against pycocotools on the resample, seeded, and its settings checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bootstrap_helpers import matching_of, resampled, run_cocoeval, synthetic_coco, synthetic_dets

from dfine_bench.config.settings import BootstrapSettings
from dfine_bench.errors import ConfigError
from dfine_bench.evaluation.bootstrap import (
    bootstrap_weights,
    replicate_ap,
    summarize,
)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("boot")
    coco = synthetic_coco(num_images=30, num_cats=3, seed=3)
    dets = synthetic_dets(coco, seed=4)
    matching, ev = matching_of(coco, dets, tmp)
    return coco, dets, matching, ev, tmp


def test_all_ones_reproduce_cocoeval(evaluation) -> None:  # type: ignore[no-untyped-def]
    coco, _dets, matching, ev, _ = evaluation
    assert any(a["iscrowd"] for a in coco["annotations"])  # the ignored-detection path is exercised
    assert (matching.det_ignored != 0).any()
    ap = replicate_ap(matching, np.ones((1, matching.num_images)))[0]
    assert ap == pytest.approx(list(ev.stats[:3]), abs=1e-12)


def test_replicates_equal_pycocotools_on_the_resample(evaluation) -> None:  # type: ignore[no-untyped-def]
    coco, dets, matching, _, tmp = evaluation
    weights = bootstrap_weights(matching.num_images, 100, seed=11)[:4]
    fast = replicate_ap(matching, weights)
    for row, counts in enumerate(weights):
        assert counts.sum() == matching.num_images and counts.max() > 1  # real duplicates
        gt, dt = resampled(coco, dets, counts)
        slow = run_cocoeval(gt, dt, tmp).stats[:3]
        assert fast[row] == pytest.approx(list(slow), abs=1e-9), f"replicate {row}"


def test_a_resample_without_some_category_leaves_it_out(tmp_path: Path) -> None:
    """Zero weight on every image holding a category: COCOeval skips it (-1), so must the bootstrap."""
    coco = synthetic_coco(num_images=12, num_cats=4, seed=8, crowd=False)
    dets = synthetic_dets(coco, seed=9)
    matching, _ = matching_of(coco, dets, tmp_path)
    rare = int(np.argmin(matching.gt_counts.sum(axis=0) + (matching.gt_counts.sum(axis=0) == 0) * 10**6))
    counts = np.ones(matching.num_images, dtype=np.int32)
    holders = matching.gt_counts[:, rare] > 0
    counts[holders] = 0
    counts[np.flatnonzero(~holders)[0]] += int(holders.sum())
    gt, dt = resampled(coco, dets, counts)
    slow = run_cocoeval(gt, dt, tmp_path).stats[:3]
    assert replicate_ap(matching, counts[None, :])[0] == pytest.approx(list(slow), abs=1e-9)


def test_summary_is_seeded_and_brackets_the_point(evaluation) -> None:  # type: ignore[no-untyped-def]
    _, _, matching, ev, _ = evaluation
    a = summarize(matching, BootstrapSettings(replicates=200, seed=1))
    b = summarize(matching, BootstrapSettings(replicates=200, seed=1))
    c = summarize(matching, BootstrapSettings(replicates=200, seed=2))
    assert a["values"] == b["values"] and a["weights_sha256"] == b["weights_sha256"]
    assert a["values"] != c["values"] and a["weights_sha256"] != c["weights_sha256"]
    assert (a["replicates"], a["seed"], len(a["values"]["AP"])) == (200, 1, 200)
    for j, name in enumerate(("AP", "AP50", "AP75")):
        lo, hi = a["ci"][name]
        assert a["point"][name] == pytest.approx(100 * ev.stats[j], abs=1e-6)
        assert lo < a["point"][name] < hi
        assert a["std"][name] > 0


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"replicates": 99}, "replicates=99"),
        ({"replicates": 0}, "replicates=0"),
        ({"seed": -1}, "seed=-1"),
        ({"confidence": 1.0}, "confidence=1.0"),
    ],
)
def test_bad_settings_are_refused_in_one_line(values: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        BootstrapSettings(**values)  # type: ignore[arg-type]
    assert f"evaluation.bootstrap.{field}" in str(err.value) and "\n" not in str(err.value)


def test_few_replicates_pass_when_the_bootstrap_is_off() -> None:
    assert BootstrapSettings(enabled=False, replicates=10).replicates == 10


def test_the_cli_refuses_few_replicates_at_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    from dfine_bench.cli import main

    assert main(["run", "model=dfine_fixture", "evaluation.bootstrap.replicates=50"]) == 2
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert len(lines) == 1 and "evaluation.bootstrap.replicates=50" in lines[0] and "B >= 100" in lines[0]


@pytest.mark.parametrize("engine", ["faster_coco_eval", "pycocotools"])
def test_every_coco_record_carries_the_intervals(tmp_path: Path, engine: str) -> None:
    """``evaluate_predictions`` (and the coco evaluator, through the same ``add_bootstrap``)."""
    import json

    from dfine_bench.evaluation.outcome import evaluate_predictions

    coco = synthetic_coco(num_images=25, num_cats=3, seed=5)
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    (tmp_path / "dt.json").write_text(json.dumps(synthetic_dets(coco, seed=6)))
    settings = BootstrapSettings(replicates=150, seed=3)
    out = evaluate_predictions(tmp_path / "gt.json", tmp_path / "dt.json", engine=engine, bootstrap=settings)
    boot = out.details["bootstrap"]
    assert (boot["replicates"], boot["seed"], boot["images"]) == (150, 3, 25)
    for name in ("AP", "AP50", "AP75"):
        value = out.metrics[name].value
        assert value is not None and boot["point"][name] == pytest.approx(value, abs=1e-6)
        assert boot["ci"][name][0] <= value <= boot["ci"][name][1]
    assert not any("bootstrap" in n for n in out.notes)


def test_the_inference_driver_records_the_intervals(gen_dataset, adapter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through ``evaluate_model`` (the coco evaluator): the intervals, with B and the seed, in the record;
    the pycocotools engine's own matching and faster-coco-eval's extra pass agree exactly."""
    from dfine_bench.config.settings import EvaluationSettings
    from dfine_bench.evaluation import evaluate_model

    boots = []
    for engine in ("faster_coco_eval", "pycocotools"):
        cfg = EvaluationSettings(
            batch_size=4, num_workers=0, engine=engine, bootstrap=BootstrapSettings(replicates=100, seed=7)
        )
        (o,) = evaluate_model(adapter, gen_dataset, cfg, tmp_path / engine)
        boot = o.details["bootstrap"]
        assert (boot["replicates"], boot["seed"], boot["images"]) == (100, 7, 24)
        assert boot["point"]["AP"] == pytest.approx(o.metrics["AP"].value, abs=1e-6)
        boots.append(boot)
    assert (
        boots[0]["values"] == boots[1]["values"] and boots[0]["weights_sha256"] == boots[1]["weights_sha256"]
    )
    off = EvaluationSettings(batch_size=4, num_workers=0, bootstrap=BootstrapSettings(enabled=False))
    (o,) = evaluate_model(adapter, gen_dataset, off, tmp_path / "off")
    assert "bootstrap" not in o.details
