"""A resumed run checks what is on disk (issue 22, probe C): a record file deleted or truncated since
makes its unit run again, and replaced image files are other data (the stale AP is never kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfine_bench.cli import main
from dfine_bench.records import load_records

TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
EVAL_ONLY = [
    "--suites-dir",
    str(TOY_SUITES),
    "suite=toy_quick",
    "suite.models=[toy_det]",
    "profiling.enabled=false",
]


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_lost_record_runs_its_unit_again(plugin_site, cli_env: Path, damage: str) -> None:
    args = ["run", *EVAL_ONLY, "dataset.num_images=3", "output.run_id=lost"]
    assert main(args) == 0
    run_dir = cli_env / "results" / "lost"
    (record_file,) = sorted((run_dir / "records").glob("*.json"))
    if damage == "delete":
        record_file.unlink()
    else:
        record_file.write_bytes(record_file.read_bytes()[:40])
    assert main(args) == 0
    (record,) = load_records([run_dir], strict=True)
    assert record.status == "ok" and record.value("images_seen") == 3


def test_replaced_images_are_not_resumed(
    plugin_site, cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dfine_bench.data.generated import GeneratedParams, generate_dataset

    root = cli_env / "coco"
    images, annotations = generate_dataset(root, GeneratedParams(num_images=3, image_size=(64, 96), seed=0))
    args = [
        "run",
        *EVAL_ONLY,
        "dataset=coco",
        f"dataset.images={images}",
        f"dataset.annotations={annotations}",
        "output.run_id=replaced",
    ]
    assert main(args) == 0
    first = sorted(images.glob("*.png"))[0]
    first.write_bytes(first.read_bytes() + b"\0")  # same name and annotation, other file
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "output.run_id=replaced" in err and "other data" in err and "new run id" in err
