"""`dfine-bench train` checks its settings and its data before the first step (issue 22, probes E, 5, 6):
bad values, sizes the model cannot run at and training data the loss cannot learn from are one-line
errors (exit 2) naming the key, file or annotation id, and nothing is written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from dfine_bench.cli import main
from dfine_bench.data.generated import GeneratedParams, generate_dataset

TINY = [
    "model=dfine_n",
    "input_size=[256,256]",
    "dataset.num_images=4",
    "dataset.image_size=[64,96]",
    "val_dataset=null",
    "train.steps=1",
    "train.batch_size=2",
    "train.warmup_steps=1",
    "train.eval_train_images=0",
    "progress=off",
]
TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.lr=inf", "train.lr"),
        ("train.lr=nan", "train.lr"),
        ("train.grad_clip=-1", "train.grad_clip"),
        ("train.seed=-1", "train.seed"),
        ("device=tpu", "device"),
        ("progress=sometimes", "progress"),
        ("log_level=LOUD", "log_level"),
        ("dataset.num_images=1000000000", "dataset.num_images"),
        ("dataset.exif=sideways", "dataset.exif"),
        ("input_size=[31,33]", "input_size"),
        ("input_size=[64,64]", "input_size"),
    ],
)
def test_bad_settings_are_one_line_before_any_work(cli_env: Path, capsys, override: str, named: str) -> None:
    assert main(["train", *TINY, override, "train.out_dir=out"]) == 2
    err = _one_line(capsys)
    assert f"{named}=" in err
    assert not any(cli_env.iterdir()), "nothing is written"


def test_a_size_the_model_cannot_run_names_what_it_accepts(cli_env: Path, capsys) -> None:
    assert main(["train", *TINY, "input_size=[64,64]", "train.out_dir=out"]) == 2
    err = _one_line(capsys)
    assert "multiples of 32" in err and "300 queries" in err and "[256, 256]" in err


def test_a_huge_generated_dataset_is_refused_by_run_too(plugin_site, cli_env: Path, capsys) -> None:
    args = ["--suites-dir", str(TOY_SUITES), "suite=toy_quick", "suite.models=[toy_det]"]
    assert main(["run", *args, "dataset.num_images=1000000000"]) == 2
    assert "dataset.num_images=1000000000" in _one_line(capsys)
    assert not (cli_env / "results").exists()


# -- training data --------------------------------------------------------------------------------
def _dataset(root: Path, edit: Any) -> list[str]:
    images, annotations = generate_dataset(root, GeneratedParams(num_images=4, image_size=(64, 96), seed=2))
    data = json.loads(annotations.read_text())
    edit(data, images)
    edited = root / "edited.json"
    edited.write_text(json.dumps(data))
    return ["dataset=coco", f"dataset.images={images}", f"dataset.annotations={edited}"]


def _first_box(data: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in data["annotations"] if not a["iscrowd"])


def _set_box(box: list[float]) -> Any:
    def edit(data: dict[str, Any], _images: Path) -> None:
        _first_box(data)["bbox"] = box

    return edit


def _crowd_only(data: dict[str, Any], _images: Path) -> None:
    for ann in data["annotations"]:
        ann["iscrowd"] = 1


def _corrupt_image(data: dict[str, Any], images: Path) -> None:
    last = images / data["images"][-1]["file_name"]
    last.write_bytes(last.read_bytes()[:200])  # a truncated PNG: its header still reads


def _swapped_size(data: dict[str, Any], _images: Path) -> None:
    entry = data["images"][0]
    entry["width"], entry["height"] = entry["height"], entry["width"]


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (_set_box([10, 10, 0, 20]), "zero-size bbox"),
        (_set_box([10, 10, math.nan, 20]), "non-finite bbox"),
        (_set_box([10, 10, 1e30, 20]), "outside its 96x64 image"),
        (_set_box([90, 10, 40, 20]), "outside its 96x64 image"),
        (_crowd_only, "all crowd regions"),
        (_corrupt_image, "cannot be decoded"),
        (_swapped_size, "96x64 (width x height) as read"),
    ],
)
def test_bad_training_data_fails_before_the_first_step(cli_env: Path, capsys, edit: Any, says: str) -> None:
    data_args = _dataset(cli_env / "data", edit)
    assert main(["train", *TINY, *data_args, "train.out_dir=out"]) == 2
    err = _one_line(capsys)
    assert says in err and ("annotation id" in err or "image " in err or "edited.json" in err), err
    assert not (cli_env / "out").exists()


@pytest.mark.parametrize("size", ["[31,33]", "[64,64]"])
def test_run_refuses_a_size_the_model_cannot_run_at_start_up(cli_env: Path, capsys, size: str) -> None:
    args = ["--suites-dir", str(TOY_SUITES), "suite=toy_quick", "suite.models=[dfine_n]"]
    assert main(["run", *args, "model=dfine_n", f"model.input_size={size}"]) == 2
    err = _one_line(capsys)
    assert "model.input_size=" in err and "dfine_n accepts" in err
    assert not (cli_env / "results").exists()
