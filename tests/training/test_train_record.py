"""The training record says what reproduces it (issue 22, probe 12): the exact versions of the packages
its numbers depend on, the git revision with its dirty flag, the thread count; the card shows them."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from dfine_bench.cli import main
from dfine_bench.records.environment import git_state

TINY = [
    "model=dfine_n",
    "input_size=[256,256]",
    "dataset.num_images=2",
    "dataset.image_size=[64,96]",
    "val_dataset=null",
    "train.steps=1",
    "train.batch_size=2",
    "train.warmup_steps=1",
    "train.eval_train_images=0",
    "progress=off",
]


def test_the_record_names_exact_versions_revision_and_what_the_numbers_depend_on(cli_env: Path) -> None:
    assert main(["train", *TINY, "train.out_dir=out"]) == 0
    record = json.loads((cli_env / "out" / "train_record.json").read_text())
    repro = record["reproducibility"]
    for pkg in ("torch", "transformers", "numpy", "scipy", "pillow"):
        assert repro["packages"][pkg] == version(pkg), pkg
        assert pkg in repro["depends_on"]
    git = git_state()
    assert repro["git_revision"] == git["git_revision"] and repro["git_dirty"] == git["git_dirty"]
    assert repro["torch_threads"] >= 1 and "these package versions" in repro["note"]
    card = (cli_env / "out" / "MODEL_CARD.md").read_text()
    assert f"transformers {version('transformers')}" in card and f"numpy {version('numpy')}" in card
    if git["git_revision"]:
        assert ("dirty" if git["git_dirty"] else "(clean)") in card
