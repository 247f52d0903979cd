"""The generated stand-in dataset: COCO format, made here, deterministic from a seed.

Used for offline runs and tests when COCO val2017 is not on disk. Each image shows
flat-coloured rectangles on a dark background; every rectangle is one annotation of a
known box and category (each category has its own colour). Sizes cover COCO's
small (< 32^2), medium (< 96^2) and large areas; some images hold an ``iscrowd`` region
(hatched, annotated with an RLE mask) and some hold no objects at all. Its AP measures
nothing about any model: records mark it ``generated``.

Whether a given annotation file *is* this stand-in is decided from content, never from a
file's presence: the manifest records the generator's parameters and the annotation file's
sha256 (``is_generated_annotations``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

try:  # POSIX: serialises concurrent generation of one folder; elsewhere generation is unlocked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS, COCO80_NAMES
from dfine_bench.utils.files import atomic_write_json, sha256_file

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
ANNOTATIONS = "annotations.json"
IMAGES = "images"

#: ``info.description`` of every generated annotation file.
DESCRIPTION = "dfine-bench generated stand-in dataset (not COCO)"
#: Manifest field holding the sha256 of the annotation file it describes.
SHA_FIELD = "annotations_sha256"

#: Object categories drawn (the first 12 COCO-80 classes); all 80 are declared in the file.
DRAWN_CATEGORIES: tuple[int, ...] = COCO80_CATEGORY_IDS[:12]

#: One saturated colour per drawn category, far apart so a colour names its category.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)
BACKGROUND = (24, 24, 24)

# Side-length ranges (pixels) per COCO area class: small < 32^2, medium < 96^2, large above.
_SIDES = {"small": (8, 30), "medium": (36, 92), "large": (100, 260)}


@dataclass(frozen=True)
class GeneratedParams:
    num_images: int = 24
    image_size: tuple[int, int] = (480, 640)  # (height, width)
    seed: int = 0
    #: ``default``: 12 classes, 1-6 objects of all three COCO sizes, crowd regions and empty images;
    #: ``easy``: 3 classes, 1-3 non-crowd objects of medium size, no empty images (the FDR ablation's
    #: data, where a small model must get far enough that localization quality matters).
    layout: str = "default"

    def key(self) -> str:
        fields: list[Any] = [GENERATOR_VERSION, self.num_images, list(self.image_size), self.seed]
        if self.layout != "default":  # the default's key (and folder names) stay as they were
            fields.append(self.layout)
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:12]

    def as_dict(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "generator_version": GENERATOR_VERSION,
            "num_images": self.num_images,
            "image_size": list(self.image_size),
            "seed": self.seed,
        }
        if self.layout != "default":  # default files keep their exact bytes (and sha256)
            params["layout"] = self.layout
        return params


def _manifest_matches(manifest_path: Path, annotations: Path, params: Mapping[str, Any] | None) -> bool:
    """The manifest is the generator's, records ``annotations``' sha256 and (if given) these params."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(manifest, dict) or not isinstance(manifest.get(SHA_FIELD), str):
        return False
    recorded = {k: v for k, v in manifest.items() if k != SHA_FIELD}
    if set(recorded) - {"layout"} != set(GeneratedParams().as_dict()):
        return False  # some other tool's manifest.json
    if params is not None and recorded != dict(params):
        return False
    try:
        return bool(manifest[SHA_FIELD] == sha256_file(annotations))
    except OSError:
        return False


def is_generated_annotations(annotations: Path, coco: Mapping[str, Any] | None = None) -> bool:
    """Whether ``annotations`` is this generator's output, decided from content and hashes.

    Yes when the manifest beside it records the generator's parameters and this very file's
    sha256, or when the parsed file's own ``info`` block (``coco``, if given) carries the
    generator's description and parameters (a generated file copied elsewhere). A manifest that
    merely exists (another tool's, or one copied from a generated folder) does not count.
    """
    annotations = Path(annotations)
    if _manifest_matches(annotations.parent / MANIFEST, annotations, None):
        return True
    info = coco.get("info") if coco is not None else None
    if not isinstance(info, Mapping) or info.get("description") != DESCRIPTION:
        return False
    return all(k in info for k in GeneratedParams().as_dict())


def image_id_for(index: int) -> int:
    """Sparse, non-contiguous ids (like COCO's) so code never assumes ids are positions."""
    return 1000 + 7 * index


def _place(
    rng: np.random.Generator, h: int, w: int, area_class: str, taken: list[tuple[int, ...]]
) -> tuple[int, ...] | None:
    lo, hi = _SIDES[area_class]
    hi = min(hi, int(min(h, w) * 0.6))
    if hi < lo:
        return None  # image too small for this area class
    for _ in range(30):  # objects do not overlap: every drawn box is fully visible
        bw, bh = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        box = (x, y, x + bw, y + bh)
        if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken):
            return box
    return None


def _crowd_rle(h: int, w: int, box: tuple[int, ...]) -> dict[str, Any]:
    m = np.zeros((h, w), dtype=np.uint8)
    m[box[1] : box[3], box[0] : box[2]] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


#: Per layout: drawn categories, objects per image (low, high inclusive), area classes cycled through,
#: whether crowd regions and empty images appear.
LAYOUTS: dict[str, dict[str, Any]] = {
    "default": {"categories": 12, "objects": (1, 6), "sizes": ("small", "medium", "large"), "hard": True},
    "easy": {"categories": 3, "objects": (1, 3), "sizes": ("medium",), "hard": False},
}


def _box_annotation(category: int, box: tuple[int, ...]) -> dict[str, Any]:
    x0, y0, x1, y1 = box
    return {
        "category_id": DRAWN_CATEGORIES[category],
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": float((x1 - x0) * (y1 - y0)),
        "iscrowd": 0,
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
    }


def _make_image(
    index: int, params: GeneratedParams, rng: np.random.Generator
) -> tuple[Image.Image, list[dict[str, Any]]]:
    layout = LAYOUTS[params.layout]
    if not layout["hard"]:
        return _make_easy_image(params, rng, layout)
    h, w = params.image_size
    img = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(img)
    anns: list[dict[str, Any]] = []
    if index % 6 == 5:  # every sixth image is empty
        return img, anns
    taken: list[tuple[int, ...]] = []
    if index % 4 == 1:  # a hatched crowd region
        box = _place(rng, h, w, "large", taken)
        if box is not None:
            taken.append(box)
            k = int(rng.integers(len(DRAWN_CATEGORIES)))
            for x in range(box[0], box[2], 6):
                draw.rectangle((x, box[1], min(x + 2, box[2] - 1), box[3] - 1), fill=PALETTE[k])
            anns.append(
                {
                    "category_id": DRAWN_CATEGORIES[k],
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "area": float((box[2] - box[0]) * (box[3] - box[1])),
                    "iscrowd": 1,
                    "segmentation": _crowd_rle(h, w, box),
                }
            )
    n_objects = int(rng.integers(1, 7))
    classes = ("small", "medium", "large")
    for j in range(n_objects):
        area_class = classes[(index + j) % 3]  # every image mixes sizes; all three appear often
        box = _place(rng, h, w, area_class, taken)
        if box is None:
            continue
        taken.append(box)
        k = int(rng.integers(len(DRAWN_CATEGORIES)))
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=PALETTE[k])
        anns.append(_box_annotation(k, box))
    return img, anns


def _make_easy_image(
    params: GeneratedParams, rng: np.random.Generator, layout: dict[str, Any]
) -> tuple[Image.Image, list[dict[str, Any]]]:
    h, w = params.image_size
    img = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(img)
    anns: list[dict[str, Any]] = []
    taken: list[tuple[int, ...]] = []
    low, high = layout["objects"]
    for j in range(int(rng.integers(low, high + 1))):
        box = _place(rng, h, w, layout["sizes"][j % len(layout["sizes"])], taken)
        if box is None:
            continue
        taken.append(box)
        k = int(rng.integers(layout["categories"]))
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=PALETTE[k])
        anns.append(_box_annotation(k, box))
    return img, anns


def generate_dataset(out_dir: Path, params: GeneratedParams) -> tuple[Path, Path]:
    """Write (or reuse) the dataset under ``out_dir``; returns (images_dir, annotations file).

    A manifest written last marks the folder complete, so an interrupted generation is
    redone rather than reused half-written.
    """
    out_dir = Path(out_dir)
    if params.num_images < 1:
        raise ValueError("a generated dataset needs at least one image")
    if params.layout not in LAYOUTS:
        raise ValueError(f"generated layout must be one of {', '.join(LAYOUTS)}, got {params.layout!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Two processes may ask for the same data at once (a joblib sweep, parallel test workers): one
    # generates while the other waits for the lock and then reuses it, never deleting files in use.
    with open(out_dir / ".lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _generate_locked(out_dir, params)


def _generate_locked(out_dir: Path, params: GeneratedParams) -> tuple[Path, Path]:
    images_dir, ann_path, manifest = out_dir / IMAGES, out_dir / ANNOTATIONS, out_dir / MANIFEST
    if ann_path.is_file() and _manifest_matches(manifest, ann_path, params.as_dict()):
        return images_dir, ann_path
    # Remove only what a previous (interrupted or other-parameter) generation wrote here.
    manifest.unlink(missing_ok=True)
    ann_path.unlink(missing_ok=True)
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)
    log.info(
        "generating a stand-in COCO dataset: %d images of %s under %s",
        params.num_images,
        params.image_size,
        out_dir,
    )
    rng = np.random.default_rng(params.seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    h, w = params.image_size
    for index in range(params.num_images):
        image_id = image_id_for(index)
        img, anns = _make_image(index, params, rng)
        file_name = f"{image_id:012d}.png"  # lossless: drawn boxes stay exact
        img.save(images_dir / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    categories = [
        {"id": cid, "name": name, "supercategory": ""} for cid, name in zip(COCO80_CATEGORY_IDS, COCO80_NAMES)
    ]
    coco = {
        "info": {"description": DESCRIPTION, **params.as_dict()},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    atomic_write_json(ann_path, coco)
    # Written last: its hash ties it to this exact file (and marks the folder complete).
    atomic_write_json(manifest, {**params.as_dict(), SHA_FIELD: sha256_file(ann_path)})
    return images_dir, ann_path
