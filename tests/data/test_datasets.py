"""Resolving datasets (auto / coco / generated), subsets, image reading and annotation checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_helpers import coco_layout

from dfine_bench.config.settings import DatasetSettings
from dfine_bench.data import COCO_ENV, ResolvedDataset, load_annotations, resolve_dataset
from dfine_bench.errors import DatasetError
from dfine_bench.utils.files import sha256_file


def test_auto_without_coco_generates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COCO_ENV, raising=False)
    ds = resolve_dataset(DatasetSettings(num_images=4, image_size=[64, 96]), tmp_path)
    assert ds.generated and ds.name == "generated"
    assert ds.annotations.is_relative_to(tmp_path / "_generated")
    info = ds.info()
    assert info.generated and info.kind == "generated" and info.num_images == 4
    # a root without the annotation file: still the stand-in, never a half-found COCO
    monkeypatch.setenv(COCO_ENV, str(tmp_path))
    assert resolve_dataset(DatasetSettings(num_images=4, image_size=[64, 96]), tmp_path).generated


def test_auto_and_coco_use_the_env_root(
    small_generated: ResolvedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = coco_layout(small_generated, tmp_path / "coco")
    monkeypatch.setenv(COCO_ENV, str(root))
    for kind in ("auto", "coco"):
        ds = resolve_dataset(DatasetSettings(kind=kind), tmp_path / "cache")
        assert not ds.generated
        assert ds.name == "val2017"
        assert ds.annotations == root / "annotations" / "instances_val2017.json"
        assert ds.images_dir == root / "val2017"
        info = ds.info()
        assert info.kind == "coco" and info.annotations_sha256 == sha256_file(ds.annotations)
    assert not (tmp_path / "cache").exists()  # nothing generated


def test_root_option_beats_env(
    small_generated: ResolvedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = coco_layout(small_generated, tmp_path / "coco")
    monkeypatch.setenv(COCO_ENV, str(tmp_path / "elsewhere"))
    ds = resolve_dataset(DatasetSettings(kind="coco", root=str(root)), tmp_path)
    assert ds.images_dir == root / "val2017"


def test_coco_missing_names_path_and_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COCO_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError) as err:
        resolve_dataset(DatasetSettings(kind="coco"), tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "annotations" / "instances_val2017.json") in msg
    assert COCO_ENV in msg and "dataset.root" in msg


def test_subset_is_first_ids_in_sorted_order(small_generated: ResolvedDataset) -> None:
    all_ids = small_generated.image_ids()
    assert all_ids == sorted(all_ids) and len(all_ids) == 24
    sub = ResolvedDataset(
        name="s", images_dir=small_generated.images_dir, annotations=small_generated.annotations, subset=5
    )
    assert sub.image_ids() == all_ids[:5]
    assert sub.info().num_images == 5 and sub.info().subset == 5


def test_images_and_samples(small_generated: ResolvedDataset) -> None:
    img = small_generated.load_image(small_generated.image_ids()[0])
    assert img.dtype == np.uint8 and img.shape == (240, 320, 3)
    a = small_generated.sample_images(3)
    b = small_generated.sample_images(3)
    assert len(a) == 3 and all((x == y).all() for x, y in zip(a, b))
    assert len(small_generated.sample_images(30)) == 30  # more than the dataset holds: cycles
    assert small_generated.category_ids()[:3] == [1, 2, 3]


def test_missing_and_corrupt_images_name_the_file(small_generated: ResolvedDataset, tmp_path: Path) -> None:
    root = coco_layout(small_generated, tmp_path / "c")
    ds = ResolvedDataset(
        name="c", images_dir=root / "val2017", annotations=root / "annotations/instances_val2017.json"
    )
    first, second = ds.image_ids()[:2]
    ds.image_path(first).unlink()
    ds.image_path(second).write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=f"{ds.image_path(first).name}.*does not exist"):
        ds.load_image(first)
    with pytest.raises(DatasetError, match=f"{ds.image_path(second).name}.*cannot be decoded"):
        ds.load_image(second)


def _write(tmp_path: Path, coco: dict) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    return path


def _base() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4.0, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "person"}],
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("categories"), "'categories' section is missing"),
        (lambda c: c["annotations"][0].pop("area"), r"annotations\[0\] \(id 1\) lacks the field\(s\) area"),
        (lambda c: c["images"].append(dict(c["images"][0])), r"images\[1\] repeats the id 1"),
        (lambda c: c["annotations"].append(dict(c["annotations"][0])), r"annotations\[1\] repeats the id 1"),
        (lambda c: c["annotations"][0].update(category_id=7), "unknown category_id 7"),
        (lambda c: c["annotations"][0].update(image_id=9), "unknown image_id 9"),
        (lambda c: c["annotations"][0].update(bbox=[0, 0, -1, 2]), "negative-size bbox"),
    ],
)
def test_bad_annotation_files_name_file_and_entry(tmp_path: Path, edit, message: str) -> None:
    coco = _base()
    edit(coco)
    path = _write(tmp_path, coco)
    with pytest.raises(DatasetError, match=message) as err:
        load_annotations(path)
    assert str(path) in str(err.value)


def test_unreadable_annotation_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"broken\.json is not readable JSON"):
        load_annotations(path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_annotations(tmp_path / "absent.json")


def test_generated_cache_dir_keeps_other_files(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("not the generator's")
    cfg = DatasetSettings(kind="generated", num_images=2, image_size=[64, 64], cache_dir=str(mine))
    ds = resolve_dataset(cfg, tmp_path / "unused")
    assert ds.annotations.parent.parent == mine and (mine / "keep.txt").read_text() == "not the generator's"
    other = resolve_dataset(DatasetSettings(**{**cfg.__dict__, "seed": 9}), tmp_path / "unused")
    assert other.annotations != ds.annotations and ds.annotations.is_file()  # both parameter sets kept
