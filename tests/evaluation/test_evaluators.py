"""The evaluator registry and the driver: every configured evaluator sees every image once."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from eval_tiny_adapter import TinyAdapter

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data import ResolvedDataset
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.evaluation import (
    EvaluatorContext,
    EvaluatorResult,
    ImageInput,
    check_evaluators,
    create_evaluator,
    evaluate_model,
    list_evaluators,
    planned_outcomes,
    register_evaluator,
    unregister_evaluator,
)
from dfine_bench.evaluation import registry as R
from dfine_bench.evaluation.predictions import PredictionStream

PLUGIN_SITE = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_site"


class Recorder:
    """Remembers what the driver hands it; ``fail`` makes ``evaluate`` raise."""

    name = "recorder"
    task = "evaluation"
    key = "recorder"
    seen: ClassVar[list[int]] = []
    rows: ClassVar[dict[int, list[list[float]]]] = {}
    fail = False

    def __init__(self, context: EvaluatorContext) -> None:
        self.context = context

    def reset(self) -> None:
        Recorder.seen, Recorder.rows = [], {}

    def process(self, inputs: Sequence[ImageInput], outputs: Sequence[list[list[float]]]) -> None:
        for image, rows in zip(inputs, outputs):
            Recorder.seen.append(image.image_id)
            Recorder.rows[image.image_id] = rows

    def evaluate(self) -> EvaluatorResult:
        if Recorder.fail:
            raise RuntimeError("recorder broke")
        return EvaluatorResult(details={"images": len(Recorder.seen)})


@pytest.fixture
def recorder() -> Iterator[type[Recorder]]:
    register_evaluator("recorder", Recorder, task="evaluation")
    Recorder.fail = False
    yield Recorder
    unregister_evaluator("recorder")


def test_builtins_listed_with_wildcards() -> None:
    assert {"coco", "error_analysis"} <= set(list_evaluators())
    assert list_evaluators("err*") == ["error_analysis"]
    assert list_evaluators("nothing*") == []


def test_unknown_name_is_one_line_config_error_with_close_match() -> None:
    unknown = r"evaluation\.evaluators: unknown evaluator 'cocoo'.*Did you mean: coco"
    with pytest.raises(ConfigError, match=unknown):
        check_evaluators(["coco", "cocoo"])
    with pytest.raises(ConfigError, match="lists 'coco' twice"):
        check_evaluators(["coco", "coco"])
    with pytest.raises(ConfigError, match=r"evaluation\.evaluators is empty"):
        check_evaluators([])
    with pytest.raises(UnknownNameError):
        create_evaluator("nope", None)  # type: ignore[arg-type]


def test_planned_outcomes_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # planning needs no evaluator's package: run it the same with or without the error-analysis extra
    entry = R.get_registered("error_analysis")
    monkeypatch.setitem(R.REGISTRY._entries, "error_analysis", dataclasses.replace(entry, requires=()))
    cfg = EvaluationSettings(evaluators=["coco", "error_analysis"], backends=["eager", "onnxruntime"])
    assert planned_outcomes(cfg) == [
        ("evaluation", "faster_coco_eval"),
        ("error_analysis", "tide"),
        ("evaluation", "faster_coco_eval-onnxruntime-fp32"),
        ("error_analysis", "tide-onnxruntime-fp32"),
    ]
    with pytest.raises(ConfigError, match=r"evaluation\.backends\[1\]\.name='onnxrt'"):
        planned_outcomes(dataclasses.replace(cfg, backends=["eager", "onnxrt"]))
    with pytest.raises(ConfigError, match=r"evaluation\.evaluators: unknown evaluator 'tide'"):
        planned_outcomes(dataclasses.replace(cfg, evaluators=["tide"]))


def test_missing_package_is_a_start_up_error(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = R.get_registered("error_analysis")
    broken = dataclasses.replace(entry, requires=("no_such_pkg_x",))
    monkeypatch.setitem(R.REGISTRY._entries, "error_analysis", broken)
    hint = r"needs the no_such_pkg_x package: pip install 'dfine-bench\[error-analysis\]'"
    with pytest.raises(ConfigError, match=hint):
        check_evaluators(["error_analysis"])


def test_third_party_evaluator_registers_through_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_SITE))
    R.reload()  # discovered afresh
    try:
        assert list_evaluators("toy*") == ["toy_count"]
        ev = create_evaluator("toy_count", None)  # type: ignore[arg-type]
        ev.reset()
        ev.process([ImageInput(1), ImageInput(2)], [[[0, 0, 1, 1, 0.5, 1]], []])
        assert ev.evaluate().details == {"images": 2, "detections": 1}
    finally:
        unregister_evaluator("toy_count")
        sys.modules.pop("toy_evaluators", None)


def test_driver_feeds_every_evaluator_every_image_once(
    recorder: type[Recorder], gen_dataset: ResolvedDataset, tmp_path: Path
) -> None:
    cfg = EvaluationSettings(batch_size=4, num_workers=0, evaluators=["coco", "recorder"])
    outcomes = evaluate_model(TinyAdapter(), gen_dataset, cfg, tmp_path)
    first = outcomes[0]
    assert [(o.task, o.key, o.status) for o in outcomes] == [
        ("evaluation", "faster_coco_eval", "ok"),
        ("evaluation", "recorder", "ok"),
    ]
    assert sorted(recorder.seen) == gen_dataset.image_ids()  # each image exactly once
    done, _ = PredictionStream(tmp_path).read()
    assert recorder.rows == done  # exactly the streamed detections, unchanged
    assert outcomes[1].details["images"] == 24 and "images_seen" in outcomes[1].metrics

    # COCO's record is the same with or without another evaluator beside it
    (alone,) = evaluate_model(
        TinyAdapter(), gen_dataset, dataclasses.replace(cfg, evaluators=["coco"]), tmp_path / "alone"
    )
    assert {k: m.value for k, m in alone.metrics.items()} == {k: m.value for k, m in first.metrics.items()}
    assert alone.details["per_category_ap"] == first.details["per_category_ap"]

    # resumed from disk, nothing to infer: the evaluators still see every image
    again = evaluate_model(TinyAdapter(), gen_dataset, cfg, tmp_path)[0]
    assert again.metrics["images_skipped"].value == 24
    assert sorted(recorder.seen) == gen_dataset.image_ids()


def test_one_broken_evaluator_keeps_the_others(
    recorder: type[Recorder], gen_dataset: ResolvedDataset, tmp_path: Path
) -> None:
    recorder.fail = True
    cfg = EvaluationSettings(batch_size=4, num_workers=0, evaluators=["recorder", "coco"])
    outcomes = evaluate_model(TinyAdapter(), gen_dataset, cfg, tmp_path)
    assert [(o.key, o.status) for o in outcomes] == [("recorder", "failed"), ("faster_coco_eval", "ok")]
    assert outcomes[0].reason == "RuntimeError: recorder broke"
    assert outcomes[1].metrics["AP"].value > 1.0
