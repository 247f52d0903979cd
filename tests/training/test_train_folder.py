"""`dfine-bench train train.out_dir=...` never overwrites a user's files, and resumes only its own run
(issue 22, probe A): the same folder rules as `report`, plus the run's settings and data identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfine_bench.cli import main

TINY = [
    "model=dfine_n",
    "input_size=[256,256]",
    "dataset.num_images=4",
    "dataset.image_size=[64,96]",
    "val_dataset=null",
    "train.steps=2",
    "train.batch_size=2",
    "train.warmup_steps=1",
    "train.eval_train_images=0",
    "progress=off",
]
USER_FILES = ("MODEL_CARD.md", "loss.png", "loss.csv", "train_record.json", "model/config.json")


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_of_the_users_is_refused_and_untouched(cli_env: Path, capsys) -> None:
    out = cli_env / "mine"
    for name in USER_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(f"the user's {name}\n")
    before = _snapshot(out)
    assert main(["train", *TINY, f"train.out_dir={out}"]) == 2
    err = _one_line(capsys)
    assert "train.out_dir" in err and str(out) in err and "new train.out_dir" in err
    assert _snapshot(out) == before


def test_a_resume_must_match_settings_and_data(cli_env: Path, capsys) -> None:
    out = cli_env / "run"
    assert main(["train", *TINY, f"train.out_dir={out}"]) == 0
    assert (out / ".dfine-bench-train").is_file()
    capsys.readouterr()
    first = _snapshot(out)

    # other data (another generated seed) and another input size: refused, nothing rewritten
    for override, named in (("dataset.seed=5", "dataset.seed"), ("input_size=[288,288]", "input_size")):
        assert main(["train", *TINY, override, f"train.out_dir={out}"]) == 2
        err = _one_line(capsys)
        assert "train.out_dir" in err and named in err and "other settings or data" in err
        assert _snapshot(out) == first

    # the same command resumes (the run is finished: nothing is trained again)
    assert main(["train", *TINY, f"train.out_dir={out}"]) == 0


def test_replaced_training_images_refuse_the_resume(cli_env: Path, capsys) -> None:
    cache = cli_env / "gen"
    args = [*TINY, f"dataset.cache_dir={cache}", f"train.out_dir={cli_env / 'run'}"]
    assert main(["train", *args]) == 0
    image = sorted(cache.rglob("*.png"))[0]
    image.write_bytes(image.read_bytes() + b"\0")  # same name, other content
    capsys.readouterr()
    assert main(["train", *args]) == 2
    assert "images_identity" in _one_line(capsys)
