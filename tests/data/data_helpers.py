"""Helpers for the dataset tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from dfine_bench.data import ResolvedDataset


def coco_layout(src: ResolvedDataset, root: Path) -> Path:
    """Copy a dataset into COCO val2017's layout under ``root``."""
    (root / "annotations").mkdir(parents=True)
    shutil.copy(src.annotations, root / "annotations" / "instances_val2017.json")
    shutil.copytree(src.images_dir, root / "val2017")
    return root
