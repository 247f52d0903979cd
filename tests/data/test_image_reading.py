"""Images that change AP without a word (issue 22, probes 1-3): EXIF orientation, a real size other
than the annotation's, 16-bit grayscale. Each is read as stated, counted, and said (console, record
notes, report), or refused naming the image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfine_bench.cli import main
from dfine_bench.data.dataset import read_image
from dfine_bench.data.generated import GeneratedParams, generate_dataset
from dfine_bench.records import load_records

TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
EVAL_ONLY = [
    "--suites-dir",
    str(TOY_SUITES),
    "suite=toy_quick",
    "suite.models=[toy_det]",
    "profiling.enabled=false",
]
ORIENTATION = 0x0112


def _rotated_with_tag(path: Path, upright: np.ndarray) -> None:
    """Store ``upright`` turned 90 degrees with EXIF orientation 6, which displays it upright again."""
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    stored.save(path, exif=exif.tobytes())


# -- probe 3: 16-bit grayscale ---------------------------------------------------------------------
def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # what the probe stores: PIL's 16-bit grayscale
    pixels = read_image(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 4, 3)
    assert pixels[0, :, 0].tolist() == [0, 1, 128, 255]  # the 16-bit range onto 8 bits, not clipped
    assert (pixels[..., 0] == pixels[..., 2]).all()


# -- probe 1: EXIF orientation ---------------------------------------------------------------------
def test_exif_orientation_is_ignored_by_default_and_applied_on_request(tmp_path: Path) -> None:
    upright = np.zeros((20, 30, 3), dtype=np.uint8)
    upright[2:6, 3:12] = (200, 40, 10)
    path = tmp_path / "tagged.png"
    _rotated_with_tag(path, upright)
    assert read_image(path).shape == (30, 20, 3)  # as stored (the official code, pycocotools)
    np.testing.assert_array_equal(read_image(path, exif="apply"), upright)  # as displayed


def _coco_copy(root: Path, size: tuple[int, int]) -> tuple[Path, Path]:
    return generate_dataset(root, GeneratedParams(num_images=3, image_size=size, seed=4))


def test_tagged_images_are_counted_and_said_in_console_records_and_report(
    plugin_site, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, annotations = _coco_copy(cli_env / "coco", (64, 64))  # square: the sizes still match
    for png in sorted(images.glob("*.png")):
        _rotated_with_tag(png, np.array(Image.open(png).convert("RGB")).transpose(1, 0, 2)[::-1])
    data = ["dataset=coco", f"dataset.images={images}", f"dataset.annotations={annotations}"]
    assert main(["run", *EVAL_ONLY, *data, "output.run_id=tagged", "suite.report=true"]) == 0
    assert "3 of 3 images carry an EXIF orientation other than 1" in capsys.readouterr().err
    (record,) = load_records([cli_env / "results" / "tagged"], strict=True)
    (note,) = [n for n in record.notes if "EXIF orientation" in n]
    assert "read as stored" in note and "dataset.exif=apply" in note
    assert "EXIF orientation" in (cli_env / "reports" / "tagged" / "README.md").read_text()

    assert main(["run", *EVAL_ONLY, *data, "output.run_id=applied", "dataset.exif=apply"]) == 0
    (record,) = load_records([cli_env / "results" / "applied"], strict=True)
    assert any("rotated as displayed (dataset.exif=apply)" in n for n in record.notes)


# -- probe 2: real size != annotation size -----------------------------------------------------------
def test_a_size_mismatch_is_an_error_naming_the_image_or_a_counted_warning(
    plugin_site, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, annotations = _coco_copy(cli_env / "coco", (64, 96))
    coco = json.loads(annotations.read_text())
    for entry in coco["images"]:
        entry["width"], entry["height"] = 192, 128  # every JSON size is twice the real one
    edited = cli_env / "edited.json"
    edited.write_text(json.dumps(coco))
    data = ["dataset=coco", f"dataset.images={images}", f"dataset.annotations={edited}"]

    assert main(["run", *EVAL_ONLY, *data, "output.run_id=sizes"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    first = coco["images"][0]["file_name"]
    assert first in err and "96x64" in err and "192x128" in err and "dataset.size_mismatch=warn" in err
    assert not (cli_env / "results" / "sizes").exists()

    assert main(["run", *EVAL_ONLY, *data, "output.run_id=sizes", "dataset.size_mismatch=warn"]) == 0
    (record,) = load_records([cli_env / "results" / "sizes"], strict=True)
    assert any("3 of 3 images differ in size" in n for n in record.notes)
