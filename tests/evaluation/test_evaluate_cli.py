"""``dfine-bench evaluate``: a results file in, a record and the stats table out; bad input exits 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from eval_helpers import synthetic_detections

from dfine_bench.cli import main
from dfine_bench.data import ResolvedDataset
from dfine_bench.evaluation import run_engine
from dfine_bench.records import load_records
from dfine_bench.records.metrics import COCO_STATS


@pytest.fixture
def preds(gen_dataset: ResolvedDataset, tmp_path: Path) -> Path:
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(synthetic_detections(gen_dataset, seed=2)))
    return path


def test_evaluate_writes_record_and_prints_table(
    cli_env: Path, gen_dataset: ResolvedDataset, preds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--annotations", str(gen_dataset.annotations), "--predictions", str(preds), "--run-id", "ev1"]
    rc = main(["evaluate", *args, "--model-name", "mydet", "--engine", "pycocotools"])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == list(COCO_STATS)
    (record,) = load_records([cli_env / "results" / "ev1"], strict=True)
    assert record.task == "evaluation" and record.model.name == "mydet"
    assert record.model.weights_source == "external" and not record.model.random_init
    assert record.setup.engine == "pycocotools" and record.setup.score_threshold is None
    assert record.dataset is not None and record.dataset.generated  # the stand-in is recognised as such
    expected = run_engine(gen_dataset.annotations, json.loads(preds.read_text()), engine="pycocotools")
    for name in COCO_STATS:
        assert record.value(name) == pytest.approx(100 * expected.stats[name])
        assert f"{record.value(name):.2f}" in out.splitlines()[2].split()
    assert len(record.details["pr_curve"]["precision"]) == 101
    assert record.details["predictions_file"] == str(preds)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[3].update(score=math.nan), "detection [3] has a score that is not a finite number"),
        (lambda d: d[1].update(image_id=424242), "detection [1] has image_id 424242"),
        (lambda d: d[0].update(bbox=[1, 1, -4, 2]), "detection [0] has a negative-size bbox"),
        (lambda d: d.clear(), "no predictions at all"),
    ],
)
def test_bad_predictions_exit_2_with_one_line(
    cli_env: Path,
    gen_dataset: ResolvedDataset,
    preds: Path,
    mutate,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dets = json.loads(preds.read_text())
    mutate(dets)
    preds.write_text(json.dumps(dets, allow_nan=True))
    rc = main(["evaluate", "--annotations", str(gen_dataset.annotations), "--predictions", str(preds)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(preds) in err
    assert not (cli_env / "results").exists()


def test_missing_files_exit_2(
    cli_env: Path, gen_dataset: ResolvedDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["evaluate", "--annotations", "nope.json", "--predictions", "p.json"])
    assert rc == 2 and "annotation file nope.json does not exist" in capsys.readouterr().err
    rc = main(["evaluate", "--annotations", str(gen_dataset.annotations), "--predictions", "p.json"])
    assert rc == 2 and "predictions file p.json does not exist" in capsys.readouterr().err


def test_evaluate_records_which_weights_made_the_predictions(
    cli_env: Path, gen_dataset: ResolvedDataset, preds: Path
) -> None:
    args = ["--annotations", str(gen_dataset.annotations), "--predictions", str(preds), "--run-id", "ev2"]
    assert (
        main(["evaluate", *args, "--model-name", "dfine_l", "--weights", "ustc-community/dfine_l_coco"]) == 0
    )
    (record,) = load_records([cli_env / "results" / "ev2"], strict=True)
    assert record.model.weights_id == "ustc-community/dfine_l_coco" and record.model.weights_sha256 is None
