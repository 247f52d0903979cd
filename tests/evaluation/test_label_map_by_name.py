"""COCO's class names under other category ids (issue 22, probe 4): a COCO head is mapped onto them by
name (and the record and console say so); names that fit neither way are refused at start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfine_bench.cli import main
from dfine_bench.data.generated import GeneratedParams, generate_dataset
from dfine_bench.records import load_records

TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
EVAL_ONLY = [
    "--suites-dir",
    str(TOY_SUITES),
    "suite=toy_quick",
    "suite.models=[toy_det_color]",
    "profiling.enabled=false",
]


def _renumbered(src: Path, out: Path, *, rename: bool = False, first: int = 0) -> Path:
    """The categories as ids 0..N-1 (what many export tools write); ``rename``: not COCO's names either."""
    coco = json.loads(src.read_text())
    new_id = {c["id"]: i + first for i, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}
    for cat in coco["categories"]:
        cat["id"] = new_id[cat["id"]]
        if rename:
            cat["name"] = f"class-{cat['id']}"
    for ann in coco["annotations"]:
        ann["category_id"] = new_id[ann["category_id"]]
    out.write_text(json.dumps(coco))
    return out


def _args(images: Path, annotations: Path, run_id: str) -> list[str]:
    data = ["dataset=coco", f"dataset.images={images}", f"dataset.annotations={annotations}"]
    return ["run", *EVAL_ONLY, *data, f"output.run_id={run_id}"]


def test_coco_names_under_other_ids_are_mapped_by_name(
    plugin_site, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, annotations = generate_dataset(
        cli_env / "coco", GeneratedParams(num_images=6, image_size=(96, 128))
    )
    assert main(_args(images, annotations, "ids")) == 0
    (by_id,) = load_records([cli_env / "results" / "ids"], strict=True)
    assert by_id.value("AP") > 50  # the colour detector really detects

    renumbered = _renumbered(annotations, cli_env / "renumbered.json")  # 0..N-1
    capsys.readouterr()
    assert main(_args(images, renumbered, "names")) == 0
    assert "category ids mapped by name" in capsys.readouterr().err
    (by_name,) = load_records([cli_env / "results" / "names"], strict=True)
    assert by_name.status == "ok" and by_name.value("AP") == pytest.approx(by_id.value("AP"))
    assert any("category ids mapped by name" in n for n in by_name.notes)
    assert by_name.dataset is not None and by_name.dataset.extra["category_mapping"] == "by name"


def test_names_that_fit_neither_way_are_refused_at_start_up(
    plugin_site, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, annotations = generate_dataset(
        cli_env / "coco", GeneratedParams(num_images=3, image_size=(64, 96))
    )
    other = _renumbered(annotations, cli_env / "other.json", rename=True)
    assert main(_args(images, other, "refused")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "toy_det_color" in err and "other.json" in err, err
    assert not (cli_env / "results" / "refused").exists()
