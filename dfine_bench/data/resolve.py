"""From ``DatasetSettings`` to a ``ResolvedDataset``: COCO on disk, or the generated stand-in.

``auto`` uses COCO when ``dataset.root`` (or ``$DFINE_BENCH_COCO``) holds the annotation
file and falls back to the generated dataset otherwise; ``coco`` insists on it and names
the missing path and the setting to change.
"""

from __future__ import annotations

import os
from pathlib import Path

from dfine_bench.config.settings import DatasetSettings
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.data.generated import GeneratedParams, generate_dataset
from dfine_bench.errors import DatasetError

COCO_ENV = "DFINE_BENCH_COCO"


def _coco_paths(cfg: DatasetSettings) -> tuple[Path | None, Path | None, Path | None]:
    """(root, images dir, annotation file) from the config and environment; None where unknown."""
    root_str = cfg.root or os.environ.get(COCO_ENV) or None
    root = Path(root_str).expanduser() if root_str else None
    ann, images = Path(cfg.annotations).expanduser(), Path(cfg.images).expanduser()
    if not ann.is_absolute():
        ann = root / ann if root else None  # type: ignore[assignment]
    if not images.is_absolute():
        images = root / images if root else None  # type: ignore[assignment]
    return root, images, ann


def _coco(cfg: DatasetSettings, images: Path, ann: Path) -> ResolvedDataset:
    if not images.is_dir():
        raise DatasetError(
            f"image folder {images} does not exist: set dataset.images (or dataset.root / ${COCO_ENV})"
        )
    name = cfg.name if cfg.name != "auto" else ann.stem.removeprefix("instances_")
    return ResolvedDataset(
        name=name, images_dir=images, annotations=ann, generated=False, subset=cfg.subset,
        exif=cfg.exif, size_mismatch=cfg.size_mismatch,
    )  # fmt: skip


def resolve_dataset(cfg: DatasetSettings, cache_root: Path) -> ResolvedDataset:
    """Pick and prepare the dataset ``cfg`` describes; generated data lands under ``cache_root``."""
    kind = cfg.kind  # auto | coco | generated, and every range, checked by DatasetSettings
    if kind in ("auto", "coco"):
        _root, images, ann = _coco_paths(cfg)
        if ann is not None and ann.is_file() and images is not None:
            return _coco(cfg, images, ann)
        if kind == "coco":
            where = str(ann) if ann is not None else f"{cfg.annotations} (no root given)"
            raise DatasetError(
                f"COCO annotation file {where} not found: set dataset.root=<COCO folder> or ${COCO_ENV}, "
                "or dataset.annotations=<file> and dataset.images=<folder>"
            )
    params = GeneratedParams(num_images=cfg.num_images, image_size=cfg.image_size, seed=cfg.seed)
    base = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else Path(cache_root) / "_generated"
    out_dir = base / params.key()  # one folder per parameter set: never overwrites another
    images_dir, ann = generate_dataset(out_dir, params)
    name = cfg.name if cfg.name != "auto" else "generated"
    return ResolvedDataset(
        name=name,
        images_dir=images_dir,
        annotations=ann,
        generated=True,
        subset=cfg.subset,
        extra={"generator": params.as_dict()},
    )
