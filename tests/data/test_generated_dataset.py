"""The generated stand-in dataset: deterministic, COCO-valid, covering COCO's area ranges and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS
from dfine_bench.data import GeneratedParams, ResolvedDataset, generate_dataset, load_annotations
from dfine_bench.data.generated import MANIFEST, PALETTE


def _files(images_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(images_dir.iterdir())}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    params = GeneratedParams(num_images=8, image_size=(160, 200), seed=11)
    img_a, ann_a = generate_dataset(tmp_path / "a", params)
    img_b, ann_b = generate_dataset(tmp_path / "b", params)
    assert ann_a.read_bytes() == ann_b.read_bytes()
    assert _files(img_a) == _files(img_b)
    _, ann_c = generate_dataset(tmp_path / "c", GeneratedParams(num_images=8, image_size=(160, 200), seed=12))
    assert json.loads(ann_c.read_text())["annotations"] != json.loads(ann_a.read_text())["annotations"]


def test_areas_crowd_and_empty_images_are_covered(small_generated: ResolvedDataset) -> None:
    coco = small_generated.coco
    anns = coco["annotations"]
    plain = [a for a in anns if not a["iscrowd"]]
    areas = [a["area"] for a in plain]
    # COCO's ranges: small < 32^2 <= medium < 96^2 <= large
    assert any(a < 32**2 for a in areas)
    assert any(32**2 <= a < 96**2 for a in areas)
    assert any(a >= 96**2 for a in areas)
    assert any(a["iscrowd"] == 1 for a in anns)
    with_objects = {a["image_id"] for a in anns}
    assert any(im["id"] not in with_objects for im in coco["images"]), "no image without objects"
    for a in plain:
        assert a["area"] == a["bbox"][2] * a["bbox"][3]
    # all 80 COCO categories are declared, so COCO-80 models map onto it
    assert [c["id"] for c in coco["categories"]] == list(COCO80_CATEGORY_IDS)
    # both COCO loaders accept the file
    from faster_coco_eval import COCO
    from pycocotools.coco import COCO as PyCOCO

    assert len(COCO(str(small_generated.annotations)).getAnnIds()) == len(anns)
    assert len(PyCOCO(str(small_generated.annotations)).getAnnIds()) == len(anns)


def test_drawn_pixels_match_annotated_boxes(small_generated: ResolvedDataset) -> None:
    """Each non-crowd box is drawn in its category's colour, edge to edge."""
    colours = dict(zip(COCO80_CATEGORY_IDS, PALETTE))
    checked = 0
    for a in small_generated.coco["annotations"]:
        if a["iscrowd"]:
            continue
        img = small_generated.load_image(a["image_id"])
        x, y, w, h = a["bbox"]
        patch = img[y : y + h, x : x + w]
        assert (patch == np.array(colours[a["category_id"]], dtype=np.uint8)).all()
        checked += 1
    assert checked > 20


def test_complete_dataset_is_reused_and_incomplete_one_regenerated(tmp_path: Path) -> None:
    params = GeneratedParams(num_images=3, image_size=(64, 64), seed=0)
    _, ann = generate_dataset(tmp_path, params)
    stamp = ann.stat().st_mtime_ns
    generate_dataset(tmp_path, params)
    assert ann.stat().st_mtime_ns == stamp  # reused, not rewritten
    (tmp_path / MANIFEST).unlink()  # as if generation had been killed before finishing
    _, ann2 = generate_dataset(tmp_path, params)
    assert (tmp_path / MANIFEST).is_file()
    assert load_annotations(ann2)["images"]


def _generate_into(job: tuple[str, float]) -> int:
    import time

    from dfine_bench.data.generated import GeneratedParams, generate_dataset

    out, start = job
    time.sleep(max(0.0, start - time.time()))  # both processes begin at the same moment
    _images, ann = generate_dataset(Path(out), GeneratedParams(num_images=150, image_size=(240, 320), seed=5))
    return len(json.loads(ann.read_text())["images"])


def test_two_processes_generating_one_folder_at_once_both_succeed(tmp_path: Path) -> None:
    """A joblib sweep runs two jobs that ask for the same generated data at the same moment."""
    import multiprocessing
    import time

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        start = time.time() + 3.0  # after both workers have imported the package
        counts = pool.map(_generate_into, [(str(tmp_path / "g"), start)] * 2)
    assert counts == [150, 150]
    assert len(list((tmp_path / "g" / "images").glob("*.png"))) == 150
