"""Paired AP differences between two evaluations of the same images, and their refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bootstrap_helpers import matching_of, synthetic_coco, synthetic_dets

from dfine_bench.config.settings import BootstrapSettings
from dfine_bench.errors import DatasetError
from dfine_bench.evaluation.bootstrap import bootstrap_weights, replicate_ap
from dfine_bench.evaluation.outcome import evaluate_predictions
from dfine_bench.evaluation.paired import difference, paired_difference, paired_differences
from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup, TaskOutcome

SETTINGS = BootstrapSettings(replicates=300, seed=0)


def _record(outcome: TaskOutcome, model: str, backend: str = "eager", run: str = "r1") -> ResultRecord:
    return ResultRecord(
        run_id=run,
        record_id=f"evaluation-{model}-{backend}",
        task="evaluation",
        model=ModelInfo(name=model),
        setup=Setup(backend=backend, engine=outcome.key),
        environment={},
        metrics=dict(outcome.metrics),
        dataset=outcome.dataset,
        details=json.loads(json.dumps(outcome.details)),  # as stored
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list, list]:  # type: ignore[type-arg]
    tmp = tmp_path_factory.mktemp("paired")
    coco = synthetic_coco(num_images=40, num_cats=3, seed=21)
    (tmp / "gt.json").write_text(json.dumps(coco))
    good = synthetic_dets(coco, seed=22, quality=0.03)
    poor = synthetic_dets(coco, seed=22, quality=0.25)  # the same detections, localized worse
    return tmp, coco, good, poor


def _evaluate(tmp: Path, dets: list, name: str, settings: BootstrapSettings = SETTINGS) -> TaskOutcome:  # type: ignore[type-arg]
    (tmp / f"{name}.json").write_text(json.dumps(dets))
    return evaluate_predictions(tmp / "gt.json", tmp / f"{name}.json", bootstrap=settings)


def test_identical_detections_show_no_difference(data) -> None:  # type: ignore[no-untyped-def]
    tmp, _, good, _ = data
    a = _record(_evaluate(tmp, good, "a"), "m", "eager")
    b = _record(_evaluate(tmp, good, "b"), "m", "onnxruntime")
    for d in paired_differences(a, b).values():
        assert d.identical and d.delta == 0 and d.ci == (0.0, 0.0)
        assert d.p_value == 1.0 and d.verdict() == "no difference" and not d.significant


def test_better_localization_is_significant_and_the_replicates_are_paired(data) -> None:  # type: ignore[no-untyped-def]
    tmp, coco, good, poor = data
    a = _record(_evaluate(tmp, good, "good"), "good")
    b = _record(_evaluate(tmp, poor, "poor"), "poor")
    d = paired_difference(a, b, "AP75")
    assert d.delta > 0 and d.significant and d.verdict() == "higher" and d.p_value < 0.05
    assert paired_difference(b, a, "AP75").verdict() == "lower"
    # the difference's replicates are those of the two matchings under one set of image weights
    ma, _ = matching_of(coco, good, tmp)
    mb, _ = matching_of(coco, poor, tmp)
    w = bootstrap_weights(ma.num_images, SETTINGS.replicates, SETTINGS.seed)
    direct = 100 * (replicate_ap(ma, w)[:, 2] - replicate_ap(mb, w)[:, 2])
    stored = np.subtract(a.details["bootstrap"]["values"]["AP75"], b.details["bootstrap"]["values"]["AP75"])
    assert stored == pytest.approx(direct, abs=1e-5)


def test_the_p_value_is_the_two_sided_bootstrap_one() -> None:
    d = difference([1.0] * 90 + [-1.0] * 10, [0.0] * 100, a=1.0, b=0.0, metric="AP", seed=0)
    assert d.p_value == pytest.approx(2 * 11 / 101)
    assert difference([0.5] * 100, [0.0] * 100, a=0.5, b=0, metric="AP", seed=0).p_value == pytest.approx(
        2 / 101
    )


def test_pairs_on_other_data_are_refused_in_one_line(data) -> None:  # type: ignore[no-untyped-def]
    tmp, _, good, _ = data
    base = _evaluate(tmp, good, "base")
    a = _record(base, "m")
    cases = {}
    other_set = replace(base, details={**base.details})
    other_set.details["bootstrap"] = {**base.details["bootstrap"], "image_ids_sha256": "0" * 64, "images": 39}
    cases["different image sets: 40 images"] = _record(other_set, "n")
    assert base.dataset is not None
    cases["different datasets"] = _record(replace(base, dataset=replace(base.dataset, name="other")), "n")
    cases["different annotation files"] = _record(
        replace(base, dataset=replace(base.dataset, annotations_sha256="f" * 64)), "n"
    )
    cases["different bootstrap settings: B=300 seed 0"] = _record(
        _evaluate(tmp, good, "seed1", BootstrapSettings(replicates=300, seed=1)), "n"
    )
    off = _record(_evaluate(tmp, good, "off", BootstrapSettings(enabled=False)), "n")
    cases["has no AP bootstrap"] = off
    for expected, b in cases.items():
        with pytest.raises(DatasetError) as err:
            paired_difference(a, b)
        message = str(err.value)
        assert expected in message and "\n" not in message, message
