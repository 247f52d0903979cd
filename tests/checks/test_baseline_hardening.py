"""Issue 22, probes 7-10: the gate cannot be bypassed by the baseline file, and the files it writes
are never a user's. Each probe goes through the real CLI; every refusal is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dfine_bench.cli import main
from dfine_bench.records import metric
from dfine_bench.records.schema import DatasetInfo, ModelInfo, ResultRecord, Setup
from dfine_bench.records.store import RunStore

SAMPLES = [float(x) for x in np.linspace(10.0, 11.0, 20)]
EVAL = "evaluation-toy-faster_coco_eval"
LATENCY = "latency-toy-eager-fp32-bs1"


def _records(run_id: str) -> list[ResultRecord]:
    model = ModelInfo(
        name="toy", family="toy", weights_source="random-init", random_init=True, weights_seed=0
    )
    data = DatasetInfo(name="generated", kind="generated", generated=True, num_images=8)
    evaluation = ResultRecord(
        run_id,
        EVAL,
        "evaluation",
        model,
        Setup(device="cpu", device_name="CPU X", engine="faster_coco_eval"),
        environment={},
        metrics={
            "AP": metric("AP", 40.0),
            "AP50": metric("AP50", 60.0),
            "images_seen": metric("images_seen", 8),
        },
        dataset=data,
    )
    latency = ResultRecord(
        run_id,
        LATENCY,
        "latency",
        model,
        Setup(device="cpu", device_name="CPU X", backend="eager", dtype="fp32", batch_size=1, threads=1),
        environment={},
        metrics={"latency_median": metric("latency_median", float(np.median(SAMPLES)))},
        details={"samples_ms": SAMPLES},
    )
    return [evaluation, latency]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "results" / "r1"
    store = RunStore(run_dir)
    store.records_dir.mkdir(parents=True)
    store.write_meta({"run_id": "r1", "status": "complete", "suite": "t"})
    for r in _records("r1"):
        store.write_record(r)
    return run_dir


@pytest.fixture
def baseline(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "b.json"
    assert main(["baseline", "save", str(run), "--out", str(out)]) == 0
    assert main(["check", "--baseline", str(out), str(run)]) == 0  # the run passes its own baseline
    capsys.readouterr()
    return out


def _edit(path: Path, change: Any) -> Path:
    doc = json.loads(path.read_text())
    change(doc["records"])
    path.write_text(json.dumps(doc))
    return path


def _check(capsys: pytest.CaptureFixture[str], baseline: Path, run: Path) -> tuple[int, str]:
    code = main(["check", "--baseline", str(baseline), str(run)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- probe 8: an unknown status ---------------------------------------------------------------------
def test_unknown_status_in_the_baseline_is_refused(baseline: Path, run: Path, capsys) -> None:
    _edit(baseline, lambda recs: recs[EVAL].update(status="weird"))
    code, out = _check(capsys, baseline, run)
    assert code == 2 and "status 'weird'" in out and EVAL in out, out


# -- probe 9: values no measurement can have --------------------------------------------------------
@pytest.mark.parametrize(("metric_name", "value"), [("AP", -1e9), ("AP50", 100.5), ("latency_median", -3.0)])
def test_baseline_values_outside_the_metrics_range_are_refused(
    baseline: Path, run: Path, capsys, metric_name: str, value: float
) -> None:
    rid = LATENCY if metric_name.startswith("latency") else EVAL
    _edit(baseline, lambda recs: recs[rid]["metrics"].update({metric_name: value}))
    code, out = _check(capsys, baseline, run)
    assert code == 2 and f"metric {metric_name!r}" in out and "no measurement can be" in out, out


def test_negative_latency_samples_are_refused_not_a_regression(baseline: Path, run: Path, capsys) -> None:
    _edit(baseline, lambda recs: recs[LATENCY].update(samples_ms=[-s for s in SAMPLES]))
    code, out = _check(capsys, baseline, run)
    assert code == 2 and "latency sample" in out and "must be > 0" in out, out


# -- probe 10: a gated metric the baseline lacks -----------------------------------------------------
def test_a_gated_metric_missing_from_the_baseline_cannot_compare(baseline: Path, run: Path, capsys) -> None:
    _edit(baseline, lambda recs: recs[EVAL]["metrics"].pop("AP"))
    code, out = _check(capsys, baseline, run)
    assert code == 2, out
    assert any(line.split()[:2] == [EVAL, "AP"] and "cannot compare" in line for line in out.splitlines()), (
        out
    )


# -- probe 7: where `baseline save` and `report` write ----------------------------------------------
def test_baseline_save_refuses_a_folder_and_a_file_that_is_no_baseline(
    run: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "somewhere"
    folder.mkdir()
    err = _one_line_error(capsys, main(["baseline", "save", str(run), "--out", str(folder)]))
    assert f"--out {folder} is a folder" in err
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    err = _one_line_error(capsys, main(["baseline", "save", str(run), "--out", str(mine)]))
    assert "is not a dfine-bench baseline: it is not overwritten" in err
    assert mine.read_text() == '{"my": "notes"}'
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere" / "x.json")
    err = _one_line_error(capsys, main(["baseline", "save", str(run), "--out", str(dangling)]))
    assert "symbolic link to nothing" in err


def test_report_out_on_a_dangling_link_is_one_line(run: Path, tmp_path: Path, capsys) -> None:
    dangling = tmp_path / "report-link"
    dangling.symlink_to(tmp_path / "nowhere")
    err = _one_line_error(capsys, main(["report", str(run), "--out", str(dangling), "--no-claims"]))
    assert str(dangling.name) in err and "symbolic link" in err
