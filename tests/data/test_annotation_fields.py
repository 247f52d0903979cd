"""Annotation fields that both COCO engines misread without a word (issue 15, defect 10).

A string or null ``area`` moves APs/APl (faster-coco-eval) or crashes pycocotools; ``iscrowd: "yes"``
crashes both; an annotation id 0 (or below) is taken for "unmatched" and silently lowers AP. Each
must be one ``DatasetError`` naming the file, the annotation and the field, and exit 2 at the CLI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from dfine_bench.cli import main
from dfine_bench.data import load_annotations
from dfine_bench.errors import DatasetError


def _coco() -> dict[str, Any]:
    ann = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "area": 16.0, "iscrowd": 0}
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 10}],
        "annotations": [{"id": 1, **ann}, {"id": 2, **ann, "bbox": [5, 5, 2, 2], "area": 4}],
        "categories": [{"id": 1, "name": "person"}],
    }


def _write(path: Path, coco: dict[str, Any]) -> Path:
    path.write_text(json.dumps(coco))
    return path


BAD = [
    ({"area": "16"}, "area", "must be a number"),
    ({"area": None}, "area", "must be a number"),
    ({"area": True}, "area", "must be a number"),
    ({"area": -3.0}, "area", "negative"),
    ({"area": math.nan}, "area", "finite"),
    ({"iscrowd": "yes"}, "iscrowd", "0 or 1"),
    ({"iscrowd": 2}, "iscrowd", "0 or 1"),
    ({"iscrowd": None}, "iscrowd", "0 or 1"),
    ({"id": 0}, "id", "at least 1"),
    ({"id": -5}, "id", "at least 1"),
]


@pytest.mark.parametrize(("change", "field", "why"), BAD)
def test_bad_field_names_annotation_and_field(
    tmp_path: Path, change: dict[str, Any], field: str, why: str
) -> None:
    coco = _coco()
    coco["annotations"][1].update(change)
    path = _write(tmp_path / "ann.json", coco)
    with pytest.raises(DatasetError) as err:
        load_annotations(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert "annotations[1]" in msg and f"'{field}'" in msg and why in msg


def test_valid_fields_still_load(tmp_path: Path) -> None:
    coco = _coco()
    coco["annotations"][0].update(area=0, iscrowd=1)  # an int area and a crowd region are fine
    assert len(load_annotations(_write(tmp_path / "ok.json", coco))["annotations"]) == 2


@pytest.mark.parametrize(("change", "field", "why"), [BAD[0], BAD[5], BAD[8]])
def test_evaluate_exits_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    field: str,
    why: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    coco = _coco()
    coco["annotations"][1].update(change)
    ann = _write(tmp_path / "ann.json", coco)
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "score": 0.9}]))
    rc = main(["evaluate", "--annotations", str(ann), "--predictions", str(preds), "--run-id", "x"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "annotations[1]" in err and f"'{field}'" in err and why in err
    assert "Traceback" not in err
