"""What the gate cannot compare, and what it must never pass silently: one real run and its
baseline, then copies of either with one thing changed (a corrupt file, another schema version,
another device, a missing metric, skipped images, a failed or skipped record, ...)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gate_helpers import RunFn, copy_run

from dfine_bench.cli import main

pytestmark = pytest.mark.slow

EVAL = "evaluation-toy_det_slow-faster_coco_eval"
LATENCY = "latency-toy_det_slow-eager-fp32-bs1"
THROUGHPUT = "throughput-toy_det_slow-eager-fp32"


def check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def edit_baseline(timing, tmp_path: Path) -> Callable[[Callable[[dict[str, Any]], None]], Path]:
    """A copy of the timing baseline with ``change(doc)`` applied."""

    def edit(change: Callable[[dict[str, Any]], None]) -> Path:
        doc = json.loads(timing[1].read_text())
        change(doc)
        out = tmp_path / "edited.json"
        out.write_text(json.dumps(doc))
        return out

    return edit


def edit_record(run_dir: Path, record_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = run_dir / "records" / f"{record_id}.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_the_run_against_its_own_baseline_passes(timing, capsys) -> None:
    code, out = check(capsys, "--baseline", timing[1], timing[0])
    assert code == 0, out


def test_markdown_that_cannot_be_written_is_not_a_regression(timing, tmp_path: Path, capsys) -> None:
    """An unwritable --markdown is exit 2 (the outcome was not delivered), never the generic exit 1."""
    code, out = check(capsys, "--baseline", timing[1], timing[0], "--markdown", tmp_path)
    assert code == 2, out
    assert f"could not write {tmp_path}" in out


def test_corrupt_baseline(timing, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "ci.json"
    bad.write_text(timing[1].read_text()[:200])
    md = tmp_path / "check.md"
    code, out = check(capsys, "--baseline", bad, timing[0], "--markdown", md)
    assert code == 2
    assert str(bad) in out and "not valid JSON" in out and "line" in out
    assert "CANNOT COMPARE" in md.read_text(), "the PR comment says why too"


def test_missing_baseline_file(timing, tmp_path: Path, capsys) -> None:
    code, out = check(capsys, "--baseline", tmp_path / "nope.json", timing[0])
    assert code == 2 and "nope.json not found" in out and "baseline save" in out


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("format_version", "baseline format_version 99"),
        ("record_schema_version", "schema version 99"),
    ],
)
def test_baseline_of_another_schema_version(edit_baseline, timing, capsys, field: str, message: str) -> None:
    path = edit_baseline(lambda d: d.update({field: 99}))
    code, out = check(capsys, "--baseline", path, timing[0])
    assert code == 2, out
    assert message in out and str(path) in out and "re-save" in out


def test_baseline_with_a_broken_field(edit_baseline, timing, capsys) -> None:
    path = edit_baseline(lambda d: d["records"][LATENCY].pop("setup"))
    code, out = check(capsys, "--baseline", path, timing[0])
    assert code == 2 and f"records[{LATENCY!r}]" in out and "'setup'" in out


def test_run_records_of_another_schema_version(timing, capsys) -> None:
    run = copy_run(timing[0], "t_schema")
    edit_record(run, EVAL, lambda d: d.update(schema_version=99))
    code, out = check(capsys, "--baseline", timing[1], run)
    assert code == 2 and "schema version 99" in out


def test_another_model_set_names_the_models(edit_baseline, timing, capsys) -> None:
    def rename(doc: dict[str, Any]) -> None:
        for rec in doc["records"].values():
            rec["model"]["name"] = "toy_det_b"

    code, out = check(capsys, "--baseline", edit_baseline(rename), timing[0])
    assert code == 2, out
    assert "another model set: the run lacks toy_det_b; the baseline lacks toy_det_slow" in out


def test_missing_record(edit_baseline, timing, capsys) -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["records"]["latency-toy_det_slow-onnxruntime-fp32-bs1"] = doc["records"][LATENCY]

    code, out = check(capsys, "--baseline", edit_baseline(add), timing[0])
    assert code == 2 and "records in the baseline but not in the run: latency-toy_det_slow-onnxruntime" in out


def test_another_device_cannot_compare_timings(edit_baseline, timing, capsys) -> None:
    def move(doc: dict[str, Any]) -> None:
        for rec in doc["records"].values():
            rec["setup"]["device_name"] = "Some Other CPU"

    path = edit_baseline(move)
    code, out = check(capsys, "--baseline", path, timing[0])
    assert code == 2, out
    assert "setup.device_name is 'Some Other CPU' in the baseline" in out and "--allow-other-device" in out
    # on another machine, accuracy and complexity are still gated and timings shown as not compared
    code, out = check(capsys, "--baseline", path, timing[0], "--allow-other-device")
    assert code == 0, out
    assert "not compared" in out and "another machine" in out


def test_another_backend_cannot_compare(edit_baseline, timing, capsys) -> None:
    path = edit_baseline(lambda d: d["records"][LATENCY]["setup"].update(backend="onnxruntime"))
    code, out = check(capsys, "--baseline", path, timing[0])
    assert code == 2 and "setup.backend is 'onnxruntime' in the baseline but 'eager' in the run" in out


def test_missing_metric_cannot_compare(timing, capsys) -> None:
    run = copy_run(timing[0], "t_missing")
    edit_record(run, EVAL, lambda d: d["metrics"].pop("AP75"))
    code, out = check(capsys, "--baseline", timing[1], run)
    assert code == 2, out
    assert any("AP75" in line and "metric missing in the run" in line for line in out.splitlines())


def test_skipped_images_are_flagged(timing, capsys) -> None:
    run = copy_run(timing[0], "t_skipped_images")
    edit_record(run, EVAL, lambda d: d["metrics"]["images_skipped"].update(value=3.0))
    code, out = check(capsys, "--baseline", timing[1], run)
    assert code == 2, out
    assert "3 image(s) skipped" in out and "fresh output.run_id" in out


@pytest.mark.parametrize(("status", "code"), [("failed", 1), ("skipped", 2)])
def test_not_ok_record_against_a_clean_baseline(timing, capsys, status: str, code: int) -> None:
    run = copy_run(timing[0], f"t_{status}")
    edit_record(run, LATENCY, lambda d: d.update(status=status, reason="injected", metrics={}))
    got, out = check(capsys, "--baseline", timing[1], run)
    assert got == code, out
    assert f"ok in the baseline, {status} now: injected" in out


def as_crashed(doc: dict[str, Any]) -> None:
    """Rewrite a record the way the runner writes a task that crashed: the same record id, status
    failed, no metrics, no dataset, the run's base setup (none of the task's own: timed part,
    engine, swept batch sizes; the evaluation batch size and the process's threads) and the model
    as known before it was built."""
    base_setup = {k: doc["setup"][k] for k in ("device", "device_name", "dtype", "backend", "input_size")}
    doc.update(
        status="failed",
        reason="RuntimeError: boom",
        metrics={},
        details={},
        dataset=None,
        setup={**base_setup, "batch_size": 4, "threads": 2, "protocol": "custom", "extra": {}},
    )
    doc["model"].update(weights_seed=None, weights_id=None, weights_sha256=None)


@pytest.mark.parametrize("record_id", [EVAL, LATENCY, THROUGHPUT])
def test_a_task_that_crashed_is_a_regression(timing, capsys, record_id: str) -> None:
    """README: "a newly failed record is a regression", for the records the runner writes on a crash."""
    run = copy_run(timing[0], "t_crashed")
    edit_record(run, record_id, as_crashed)
    code, out = check(capsys, "--baseline", timing[1], run)
    assert code == 1, out
    (line,) = [x for x in out.splitlines() if x.startswith(record_id)]
    assert (
        "status" in line and "WORSE" in line and "ok in the baseline, failed now: RuntimeError: boom" in line
    )
    assert "another setup" not in out, "a crash is a regression, not an incomparable setup"


def test_a_real_run_whose_tasks_crash_is_a_regression(
    run_toy: RunFn, timing, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, end to end: the runner's own records of crashed tasks, against a clean baseline."""
    import dfine_bench.profiling
    import dfine_bench.runner

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the task fell over")

    # where the runner looks them up: evaluate_model is imported by name, profile_model by module
    monkeypatch.setattr(dfine_bench.runner, "evaluate_model", crash)
    monkeypatch.setattr(dfine_bench.profiling, "profile_model", crash)
    run = run_toy("t_all_crashed", ["toy_det_slow"], expect=1, TOY_SLEEP_S="0.02")
    code, out = check(capsys, "--baseline", timing[1], run)
    assert code == 1, out
    failed = [
        x for x in out.splitlines() if "ok in the baseline, failed now: RuntimeError: the task fell over" in x
    ]
    assert {x.split()[0] for x in failed} == set(json.loads(timing[1].read_text())["records"]), out
    assert "another setup" not in out and "records in the" not in out, out


def test_baselines_keep_the_checkpoint(timing, edit_baseline, capsys) -> None:
    """weights_id / weights_sha256 are saved; a baseline saved before they were is still read."""
    doc = json.loads(timing[1].read_text())
    assert all({"weights_id", "weights_sha256"} <= set(r["model"]) for r in doc["records"].values())

    def forget(doc: dict[str, Any]) -> None:
        for rec in doc["records"].values():
            del rec["model"]["weights_id"], rec["model"]["weights_sha256"]

    code, out = check(capsys, "--baseline", edit_baseline(forget), timing[0])
    assert code == 0, out
    assert "no weights_id / weights_sha256" in out and "re-save" in out


def test_another_checkpoint_cannot_compare(timing, edit_baseline, capsys) -> None:
    def old(doc: dict[str, Any]) -> None:
        for rec in doc["records"].values():
            rec["model"].update(weights_id="ckpt/old.pth", weights_sha256="a" * 64)

    run = copy_run(timing[0], "t_checkpoint")
    for path in (run / "records").glob("*.json"):
        edit_record(
            run, path.stem, lambda d: d["model"].update(weights_id="ckpt/new.pth", weights_sha256="b" * 64)
        )
    code, out = check(capsys, "--baseline", edit_baseline(old), run)
    assert code == 2, out
    assert "other weights: model.weights_id is 'ckpt/old.pth' in the baseline but 'ckpt/new.pth'" in out
    assert f"model.weights_sha256 is '{'a' * 64}' in the baseline but '{'b' * 64}'" in out


def test_unfinished_run_cannot_compare(timing, capsys) -> None:
    run = copy_run(timing[0], "t_interrupted")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    code, out = check(capsys, "--baseline", timing[1], run)
    assert code == 2 and "'interrupted', not complete" in out
    capsys.readouterr()
    assert main(["baseline", "save", str(run), "--out", str(run / "b.json")]) == 2
    assert "not complete" in capsys.readouterr().err


def test_unknown_tolerance_is_an_error(timing, capsys) -> None:
    code, out = check(capsys, "--baseline", timing[1], timing[0], "--tolerance", "latncy_median=0.3")
    assert code == 2 and "'latncy_median'" in out and "valid keys" in out
    code, out = check(capsys, "--baseline", timing[1], timing[0], "--tolerance", "AP")
    assert code == 2 and "METRIC=VALUE" in out


def test_suite_tolerances_of_the_run_are_not_used(timing, capsys) -> None:
    """The run's own suite.tolerances never judge it (issue 15.7; they used to win over the
    defaults): the output says they were ignored; --tolerance still applies and is named."""
    run = copy_run(timing[0], "t_tolerance")
    meta = json.loads((run / "run.json").read_text())
    meta["config"]["suite"]["tolerances"] = {"latency_median": 0.7}
    (run / "run.json").write_text(json.dumps(meta))
    code, out = check(capsys, "--baseline", timing[1], run)
    assert code == 0, out
    assert "suite.tolerances (latency_median=0.7) are not used" in out and "x 1.7" not in out
    code, out = check(capsys, "--baseline", timing[1], run, "--tolerance", "latency_median=0.7")
    assert code == 0, out
    assert "latency_median=0.7" in out and "--tolerance" in out and "x 1.7" in out


def test_default_run_is_the_newest(timing, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    old = results / "old"
    shutil.copytree(timing[0], old, ignore=shutil.ignore_patterns(".lock"))
    meta = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**meta, "started_at": "2000-01-01T00:00:00+00:00"}))
    new = copy_run(timing[0], "t_newest")
    shutil.move(str(new), results / "new")
    os.utime(old / "run.json", (time.time() + 100, time.time() + 100))  # mtime alone would pick "old"
    code, out = check(capsys, "--baseline", timing[1], "--results-dir", results)
    assert code == 0 and f"run:      {results / 'new'}" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = check(capsys, "--baseline", timing[1], "--results-dir", empty)
    assert code == 2 and f"no run with records under {empty}" in out


def test_nothing_to_check_against(timing, capsys) -> None:
    code, out = check(capsys, timing[0])
    assert code == 2 and "give --baseline FILE or --claims NAME" in out
