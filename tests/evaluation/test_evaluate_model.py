"""The inference loop end to end: outcome contents, resume, failures, batching, engines, label maps."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from eval_tiny_adapter import TinyAdapter

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data import ResolvedDataset
from dfine_bench.errors import DatasetError
from dfine_bench.evaluation import check_label_map, evaluate_model, evaluate_predictions
from dfine_bench.records.metrics import COCO_STATS


class CountingAdapter(TinyAdapter):
    """Counts forward calls (images) and can stop the run after some batches, like Ctrl-C."""

    def __init__(self, stop_after_batches: int | None = None) -> None:
        super().__init__()
        self.images, self.batches, self.stop = 0, 0, stop_after_batches

    def forward(self, pixel_values: torch.Tensor, **extras: torch.Tensor):
        if self.stop is not None and self.batches >= self.stop:
            raise KeyboardInterrupt
        self.batches += 1
        self.images += pixel_values.shape[0]
        return super().forward(pixel_values, **extras)


def _stats(outcome) -> dict[str, float | None]:
    return {n: outcome.metrics[n].value for n in COCO_STATS}


@pytest.fixture(scope="module")
def reference(gen_dataset: ResolvedDataset, tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("ref")
    return evaluate_model(TinyAdapter(), gen_dataset, EvaluationSettings(batch_size=4, num_workers=0), work)[
        0
    ]


def test_outcome_carries_stats_counts_setup_and_details(reference, gen_dataset: ResolvedDataset) -> None:
    o = reference
    assert o.task == "evaluation" and o.key == "faster_coco_eval" and o.status == "ok"
    assert all(o.metrics[n].unit == "%" for n in COCO_STATS)
    assert 1.0 < o.metrics["AP"].value < 100.0  # the rule-based detector finds boxes
    assert o.metrics["images_seen"].value == 24
    assert o.metrics["images_failed"].value == 0 and o.metrics["images_skipped"].value == 0
    assert o.setup == {
        "engine": "faster_coco_eval",
        "batch_size": 4,
        "detections_per_image": 100,
        "score_threshold": None,
        "timed": None,
        "input_size": [192, 256],
        # every way this evaluation differs from the paper's protocol, in words
        "deviations": [
            "generated stand-in dataset, not COCO val2017",
            "input 192x256, not 640x640",
            "batch size 4, not 1",
        ],
    }
    assert o.dataset == gen_dataset.info() and o.dataset.generated
    d = o.details
    assert len(d["pr_curve"]["recall"]) == 101 and len(d["pr_curve"]["precision"]) == 101
    assert set(d["per_category_ap"]) <= set(gen_dataset.category_names().values())
    assert len(d["per_category_ap"]) == 12
    assert d["failed_images"] == [] and d["num_detections"] == 24 * 100  # top-100 kept, never re-capped
    assert 0 < d["forward_time_s"] < d["wall_time_s"]


def test_results_file_gives_the_same_numbers_through_evaluate(
    reference, gen_dataset: ResolvedDataset
) -> None:
    again = evaluate_predictions(gen_dataset.annotations, Path(reference.details["predictions_file"]))
    assert _stats(again) == _stats(reference)
    assert again.details["per_category_ap"] == reference.details["per_category_ap"]


def test_pycocotools_engine_agrees(reference, gen_dataset: ResolvedDataset, tmp_path: Path) -> None:
    cfg = EvaluationSettings(batch_size=4, num_workers=0, engine="pycocotools")
    o = evaluate_model(TinyAdapter(), gen_dataset, cfg, tmp_path)[0]
    assert o.key == "pycocotools" and o.setup["engine"] == "pycocotools"
    for n in COCO_STATS:
        assert o.metrics[n].value == pytest.approx(reference.metrics[n].value, abs=1e-2)  # 1e-4 in [0, 1]


def test_batch_size_and_workers_do_not_change_results(
    reference, gen_dataset: ResolvedDataset, tmp_path: Path
) -> None:
    o = evaluate_model(TinyAdapter(), gen_dataset, EvaluationSettings(batch_size=3, num_workers=2), tmp_path)[
        0
    ]
    assert _stats(o) == pytest.approx(_stats(reference), abs=1e-9)
    assert o.setup["batch_size"] == 3


def test_interrupted_run_resumes_without_recomputing(
    reference, gen_dataset: ResolvedDataset, tmp_path: Path
) -> None:
    cfg = EvaluationSettings(batch_size=4, num_workers=0)
    first = CountingAdapter(stop_after_batches=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(first, gen_dataset, cfg, tmp_path)
    assert first.images == 8
    # a kill in the middle of writing leaves half a line: ignored
    part = next(tmp_path.glob("part-*.jsonl"))
    with open(part, "a") as f:
        f.write('{"image_id": 12')
    second = CountingAdapter()
    o = evaluate_model(second, gen_dataset, cfg, tmp_path)[0]
    assert second.images == 16  # only the images not finished before
    assert o.metrics["images_skipped"].value == 8 and o.metrics["images_seen"].value == 24
    assert _stats(o) == _stats(reference)
    third = CountingAdapter()
    evaluate_model(third, gen_dataset, cfg, tmp_path)
    assert third.images == 0  # everything done: nothing recomputed
    fresh = CountingAdapter()
    evaluate_model(fresh, gen_dataset, dataclasses.replace(cfg, resume=False), tmp_path)
    assert fresh.images == 24


def test_predictions_of_another_model_are_not_reused(gen_dataset: ResolvedDataset, tmp_path: Path) -> None:
    cfg = EvaluationSettings(batch_size=8, num_workers=0)
    evaluate_model(TinyAdapter(), gen_dataset, cfg, tmp_path)
    other = CountingAdapter()
    other.spec = dataclasses.replace(other.spec, name="another")
    evaluate_model(other, gen_dataset, cfg, tmp_path)
    assert other.images == 24


def test_subset_evaluates_first_ids(gen_dataset: ResolvedDataset, tmp_path: Path) -> None:
    sub = dataclasses.replace(gen_dataset, subset=6)
    adapter = CountingAdapter()
    o = evaluate_model(adapter, sub, EvaluationSettings(batch_size=4, num_workers=0), tmp_path)[0]
    assert adapter.images == 6 and o.metrics["images_seen"].value == 6 and o.dataset.subset == 6


def _broken_copy(gen_dataset: ResolvedDataset, root: Path) -> tuple[ResolvedDataset, int]:
    shutil.copytree(gen_dataset.images_dir, root / "images")
    ds = ResolvedDataset(name="broken", images_dir=root / "images", annotations=gen_dataset.annotations)
    bad = ds.image_ids()[3]
    ds.image_path(bad).write_bytes(b"\x89PNG truncated")
    return ds, bad


def test_unreadable_image_is_counted_noted_and_left_out(gen_dataset: ResolvedDataset, tmp_path: Path) -> None:
    ds, bad = _broken_copy(gen_dataset, tmp_path)
    cfg = EvaluationSettings(batch_size=4, num_workers=0, max_failed_fraction=0.1)
    o = evaluate_model(TinyAdapter(), ds, cfg, tmp_path / "w")[0]
    assert o.status == "ok"
    assert o.metrics["images_failed"].value == 1 and o.metrics["images_seen"].value == 24
    assert [f["image_id"] for f in o.details["failed_images"]] == [bad]
    assert any(n.startswith("WARNING: 1 of 24 images could not be read") for n in o.notes)
    assert o.details["num_detections"] == 23 * 100
    # over the allowed fraction (default 1%): the evaluation fails, with the reason
    strict = evaluate_model(TinyAdapter(), ds, EvaluationSettings(num_workers=0), tmp_path / "w2")[0]
    assert strict.status == "failed" and "max_failed_fraction" in strict.reason
    assert "AP" not in strict.metrics


def test_label_map_checked_before_any_image(gen_dataset: ResolvedDataset, tmp_path: Path) -> None:
    ds = ResolvedDataset(name="noimages", images_dir=tmp_path / "absent", annotations=gen_dataset.annotations)
    obj365 = CountingAdapter()
    obj365.spec = dataclasses.replace(obj365.spec, label_set="obj365", num_classes=366)
    obj365.label_to_category = list(range(366))
    with pytest.raises(DatasetError, match="Objects365"):
        evaluate_model(obj365, ds, EvaluationSettings(num_workers=0), tmp_path / "w")
    assert obj365.images == 0 and not (tmp_path / "w").exists()


def test_check_label_map_cases(gen_dataset: ResolvedDataset, tmp_path: Path) -> None:
    assert check_label_map(TinyAdapter(), gen_dataset)[0] == 1  # class 0 -> person (id 1)
    with pytest.raises(DatasetError, match=r"cannot predict 1 categories.*90 \(toothbrush\)"):
        check_label_map(list(range(1, 90)), gen_dataset)
    short = TinyAdapter()
    short.label_to_category = short.label_to_category[:79]
    with pytest.raises(DatasetError, match="79 entries for 80 classes"):
        check_label_map(short, gen_dataset)
    # a dataset whose ids mean other classes than COCO's
    import json

    coco = json.loads(gen_dataset.annotations.read_text())
    coco["categories"][0]["name"] = "forklift"
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(coco))
    ds = ResolvedDataset(name="r", images_dir=gen_dataset.images_dir, annotations=renamed)
    with pytest.raises(DatasetError, match="calls id 1 'forklift'"):
        check_label_map(TinyAdapter(), ds)
