"""``compare`` on hand-made entries: which differences make records incomparable, and what a record
that did not run counts as. Fast: no run, no model (the real-run versions are in test_gate_edges.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dfine_bench.checks import entries as entries_module
from dfine_bench.checks import gate
from dfine_bench.checks.baseline import DATASET_KEYS, WEIGHTS_KEYS, Baseline, Entry, RunData
from dfine_bench.checks.gate import CANNOT, WORSE, compare

RID = "evaluation-m-faster_coco_eval"
MODEL = {
    "name": "m",
    "family": "f",
    "weights_source": "local",
    "random_init": False,
    "weights_seed": None,
    "weights_id": "/ckpt/a.pth",
    "weights_sha256": "a" * 64,
}
DATASET = {
    "name": "coco",
    "kind": "coco",
    "generated": False,
    "num_images": 5000,
    "subset": None,
    "annotations_sha256": "d" * 64,
}
SETUP = {"device": "cpu", "backend": "eager", "dtype": "fp32", "batch_size": 1, "engine": "faster_coco_eval"}


def entry(rid: str = RID, *, model: dict[str, Any] | None = None, **kw: Any) -> Entry:
    kw.setdefault("dataset", dict(DATASET))
    kw.setdefault("setup", dict(SETUP))
    kw.setdefault("metrics", {"AP": 40.0})
    return Entry(rid, rid.split("-")[0], model=dict(model or MODEL), **kw)


def check(base: Entry, new: Entry) -> gate.CheckResult:
    baseline = Baseline(entries={base.record_id: base}, path=Path("b.json"))
    run = RunData(run_dir=Path("run"), meta={}, records=[], entries={new.record_id: new})
    return compare(baseline, run)


def test_same_weights_pass() -> None:
    result = check(entry(), entry())
    assert result.exit_code == 0 and not result.notes, result


@pytest.mark.parametrize(
    ("key", "new_value"),
    [("weights_id", "/ckpt/b.pth"), ("weights_sha256", "b" * 64), ("weights_source", "hub")],
)
def test_another_checkpoint_cannot_compare_and_names_both(key: str, new_value: str) -> None:
    result = check(entry(), entry(model={**MODEL, key: new_value}))
    assert result.exit_code == 2, result
    (problem,) = result.problems
    assert problem.startswith(f"other weights: model.{key} is {MODEL[key]!r} in the baseline")
    assert f"but {new_value!r} in the run" in problem and "save a new baseline" in problem


def test_an_unhashed_checkpoint_is_told_apart_by_its_id() -> None:
    """A sha256 missing on one side (not hashed) is unknown, not a difference; weights_id still counts."""
    assert check(entry(), entry(model={**MODEL, "weights_sha256": None})).exit_code == 0
    other = check(entry(), entry(model={**MODEL, "weights_sha256": None, "weights_id": "/ckpt/b.pth"}))
    assert other.exit_code == 2 and "model.weights_id" in other.problems[0]


def test_old_baseline_without_checkpoint_identity_is_noted_not_failed() -> None:
    old = {k: v for k, v in MODEL.items() if k not in ("weights_id", "weights_sha256")}
    result = check(entry(model=old), entry(model={**MODEL, "weights_id": "/ckpt/b.pth"}))
    assert result.exit_code == 0, result
    assert any("no weights_id / weights_sha256" in n and "re-save" in n for n in result.notes), result.notes


def test_weights_identity_is_saved_in_baselines() -> None:
    assert {"weights_id", "weights_sha256"} <= set(WEIGHTS_KEYS)
    assert set(WEIGHTS_KEYS) <= set(entries_module._MODEL_KEYS)


@pytest.mark.parametrize("key", DATASET_KEYS)
def test_every_saved_dataset_key_is_compared(key: str) -> None:
    """One list of dataset keys: what the baseline saves is what the gate compares."""
    changed = {**DATASET, key: "other"}
    result = check(entry(), entry(dataset=changed))
    assert result.exit_code == 2 and f"dataset.{key} is" in result.problems[0], result
    assert not hasattr(gate, "_DATASET_FIELDS"), "a second copy of the dataset keys is back"


@pytest.mark.parametrize(
    "rid",
    ["evaluation-m-faster_coco_eval", "latency-m-eager-fp32-bs1", "throughput-m-eager-fp32"],
)
def test_a_task_that_crashed_is_a_regression_not_another_setup(rid: str) -> None:
    """The runner's record of a crashed task: same record id, the base setup only, no dataset."""
    setup = {**SETUP, "timed": "model", "threads": 1, "device_name": "CPU X", "batch_sizes": [1, 2]}
    base = entry(rid, setup=setup, metrics={"AP": 40.0, "latency_median": 5.0, "throughput": 100.0})
    crashed = entry(
        rid,
        status="failed",
        reason="RuntimeError: boom",
        model={**MODEL, "weights_id": None, "weights_sha256": None},  # the model was never built
        setup={**SETUP, "batch_size": 4, "engine": None, "timed": None, "threads": 2, "device_name": "CPU X"},
        dataset=None,
        metrics={},
    )
    result = check(base, crashed)
    assert result.exit_code == 1, result
    (row,) = result.rows
    assert row.verdict == WORSE and row.why == "ok in the baseline, failed now: RuntimeError: boom"
    assert not result.problems, "a crash is not 'another setup'"
    skipped = check(base, entry(rid, status="skipped", reason="no onnxruntime", dataset=None, metrics={}))
    assert skipped.exit_code == 2 and skipped.rows[0].verdict == CANNOT
