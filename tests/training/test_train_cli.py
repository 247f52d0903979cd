"""`dfine-bench train` end to end on a tiny budget: outputs, record, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dfine_bench.cli import main

TINY = [
    "model=dfine_n",
    "input_size=[256,256]",
    "dataset.num_images=6",
    "dataset.image_size=[64,96]",
    "val_dataset.num_images=3",
    "val_dataset.image_size=[64,96]",
    "train.steps=3",
    "train.batch_size=2",
    "train.warmup_steps=1",
    "train.eval_train_images=3",
    "progress=off",
]


def test_train_writes_weights_curve_and_record(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *TINY, "train.out_dir=out"]) == 0
    out = cli_env / "out"
    for name in (
        "model/model.safetensors",
        "model/config.json",
        "model-fp16/model.safetensors",
        "loss.csv",
        "loss.png",
        "MODEL_CARD.md",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "loss.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    record = json.loads((out / "train_record.json").read_text())
    assert record["steps"] == 3 and record["settings"]["seed"] == 0
    assert record["datasets"]["train"]["generated"] is True
    assert record["datasets"]["held_out"]["extra"]["generator"]["seed"] == 0
    assert set(record["ap"]) == {"train", "held_out"}
    assert record["environment"]["torch"] and "git_revision" in record["environment"]
    assert record["weights"]["fp16_sha256"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "Fixture weights, trained on generated data" in card and record["weights"]["fp16_sha256"] in card
    printed = capsys.readouterr().out
    assert "trained 3 steps" in printed and "fixture numbers" in printed


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.steps=0", "train.steps"),
        ("train.batch_size=0", "train.batch_size"),
        ("input_size=[0,0]", "input_size"),
        ("model=no_such_model", "no_such_model"),
        ("train.stepz=3", "train.stepz"),
    ],
)
def test_bad_values_are_one_line_errors_before_any_work(
    cli_env: Path, capsys: pytest.CaptureFixture[str], override: str, named: str
) -> None:
    assert main(["train", *TINY, override, "train.out_dir=out"]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1
    assert not (cli_env / "out").exists() and not (cli_env / "results").exists()
