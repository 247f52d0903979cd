"""Is an annotation file the generator's stand-in? Decided from content and hashes (issue 15, defect 9).

A ``manifest.json`` beside a real annotation file (many dataset tools write one) used to make
``evaluate`` label real data "generated"; only a manifest that records this file's sha256 counts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dfine_bench.data import ResolvedDataset
from dfine_bench.data.generated import MANIFEST, GeneratedParams, generate_dataset, is_generated_annotations
from dfine_bench.evaluation.outcome import evaluate_predictions
from dfine_bench.utils.files import sha256_file


def _real(root: Path) -> tuple[Path, Path]:
    """A hand-made (not generated) COCO file and a predictions file for it."""
    root.mkdir(parents=True, exist_ok=True)
    coco: dict[str, Any] = {
        "info": {"description": "my labelled street scenes"},
        "images": [{"id": 1, "file_name": "a.png", "height": 50, "width": 50}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400.0, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    ann = root / "instances_streets.json"
    ann.write_text(json.dumps(coco))
    preds = root / "preds.json"
    preds.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.9}]))
    return ann, preds


def test_real_data_beside_a_foreign_manifest_is_not_generated(tmp_path: Path) -> None:
    ann, preds = _real(tmp_path / "real")
    (ann.parent / MANIFEST).write_text(json.dumps({"tool": "labelstudio", "version": 3}))
    assert not is_generated_annotations(ann)
    dataset = evaluate_predictions(ann, preds).dataset
    assert dataset is not None and not dataset.generated and dataset.kind == "coco"
    assert dataset.name == "streets"


def test_a_generator_manifest_for_another_file_does_not_count(tmp_path: Path) -> None:
    """A generated folder's manifest copied next to real data: its hash names another file."""
    _, gen_ann = generate_dataset(tmp_path / "gen", GeneratedParams(num_images=2, image_size=(64, 64)))
    ann, preds = _real(tmp_path / "real")
    shutil.copy(gen_ann.parent / MANIFEST, ann.parent / MANIFEST)
    assert not is_generated_annotations(ann)
    dataset = evaluate_predictions(ann, preds).dataset
    assert dataset is not None and not dataset.generated


def test_generated_data_is_recognised_by_its_manifest_hash(tmp_path: Path) -> None:
    _, ann = generate_dataset(tmp_path / "gen", GeneratedParams(num_images=2, image_size=(64, 64)))
    manifest = json.loads((ann.parent / MANIFEST).read_text())
    assert manifest["annotations_sha256"] == sha256_file(ann)
    assert manifest["num_images"] == 2 and manifest["seed"] == 0
    assert is_generated_annotations(ann)


def test_generated_data_without_its_manifest_still_declares_itself(small_generated: ResolvedDataset) -> None:
    """Copied elsewhere, the file's own ``info`` block still names the generator and its parameters."""
    coco = json.loads(small_generated.annotations.read_text())
    assert is_generated_annotations(Path("/nonexistent/annotations.json"), coco)
    coco["info"] = {"description": "dfine-bench generated, said a user"}  # no generator parameters
    assert not is_generated_annotations(Path("/nonexistent/annotations.json"), coco)


def test_a_tampered_generated_file_is_regenerated(tmp_path: Path) -> None:
    params = GeneratedParams(num_images=2, image_size=(64, 64))
    _, ann = generate_dataset(tmp_path, params)
    original = ann.read_bytes()
    ann.write_text(ann.read_text().replace('"iscrowd": 0', '"iscrowd": 1', 1))
    generate_dataset(tmp_path, params)  # the manifest's hash no longer matches: not reused
    assert ann.read_bytes() == original
