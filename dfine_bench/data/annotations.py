"""Reading and checking a COCO-format annotation file before anything uses it.

Both COCO engines accept malformed files in ways that change AP without a word (a
duplicate id silently replaces an entry, a missing or string ``area`` breaks the
small/medium/large split, an annotation id 0 reads as "unmatched" in the matcher). Every check
here raises a ``DatasetError`` naming the file and the offending entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dfine_bench.errors import DatasetError

_IMAGE_FIELDS = ("id", "file_name", "height", "width")
_ANN_FIELDS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
_CAT_FIELDS = ("id", "name")


def load_annotations(path: Path) -> dict[str, Any]:
    """Load and validate a COCO annotation file; returns the parsed dict."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"annotation file {path} is not readable JSON: {exc}") from None
    validate_annotations(data, path)
    return data


def _entry_fields(entries: Any, section: str, fields: Sequence[str], path: Path) -> None:
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: '{section}' must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise DatasetError(f"{path}: {section}[{i}] is not an object")
        missing = [f for f in fields if f not in entry]
        if missing:
            raise DatasetError(
                f"{path}: {section}[{i}] (id {entry.get('id')!r}) lacks the field(s) {', '.join(missing)}"
            )


def _unique_ids(entries: list[dict[str, Any]], section: str, path: Path) -> set[int]:
    seen: set[int] = set()
    for i, entry in enumerate(entries):
        ident = entry["id"]
        if not isinstance(ident, int) or isinstance(ident, bool):
            raise DatasetError(f"{path}: {section}[{i}] has a non-integer id {ident!r}")
        if ident in seen:
            raise DatasetError(f"{path}: {section}[{i}] repeats the id {ident} (ids must be unique)")
        seen.add(ident)
    return seen


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _annotation_values(ann: Mapping[str, Any], where: str) -> None:
    """Types and ranges the engines assume without checking."""
    # Both engines mark a ground truth as "unmatched" with id 0 (and test ``> 0``), so an id of 0
    # or below is never counted as matched: AP drops silently.
    if ann["id"] < 1:
        raise DatasetError(f"{where} field 'id' must be at least 1 (COCO matchers treat id 0 as unmatched)")
    area = ann["area"]
    if not _is_number(area):
        raise DatasetError(f"{where} field 'area' must be a number (pixels), found {area!r}")
    if not math.isfinite(area):
        raise DatasetError(f"{where} field 'area' must be a finite number, found {area!r}")
    if area < 0:
        raise DatasetError(f"{where} field 'area' is negative ({area!r})")
    crowd = ann["iscrowd"]
    if isinstance(crowd, bool) or crowd not in (0, 1):
        raise DatasetError(f"{where} field 'iscrowd' must be 0 or 1, found {crowd!r}")


def _annotation_references(
    ann: Mapping[str, Any], where: str, image_ids: set[int], category_ids: set[int]
) -> None:
    """The image and category an annotation names both exist."""
    if ann["image_id"] not in image_ids:
        raise DatasetError(f"{where} refers to unknown image_id {ann['image_id']}")
    if ann["category_id"] not in category_ids:
        raise DatasetError(f"{where} refers to unknown category_id {ann['category_id']}")


def _annotation_bbox(ann: Mapping[str, Any], where: str) -> None:
    """``bbox`` is four finite numbers with a non-negative width and height."""
    bbox = ann["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        raise DatasetError(f"{where} has a malformed bbox {bbox!r}")
    if not all(math.isfinite(v) for v in bbox):
        raise DatasetError(f"{where} has a non-finite bbox {bbox!r}")
    if bbox[2] < 0 or bbox[3] < 0:
        raise DatasetError(f"{where} has a negative-size bbox {bbox!r}")


def validate_annotations(data: Any, path: Path) -> None:
    """Check the sections, required fields, unique ids and references of a COCO dict."""
    if not isinstance(data, Mapping):
        raise DatasetError(f"{path}: a COCO annotation file is a JSON object, found {type(data).__name__}")
    for section in ("images", "annotations", "categories"):
        if section not in data:
            raise DatasetError(f"{path}: the '{section}' section is missing")
    _entry_fields(data["images"], "images", _IMAGE_FIELDS, path)
    _entry_fields(data["annotations"], "annotations", _ANN_FIELDS, path)
    _entry_fields(data["categories"], "categories", _CAT_FIELDS, path)
    image_ids = _unique_ids(data["images"], "images", path)
    category_ids = _unique_ids(data["categories"], "categories", path)
    _unique_ids(data["annotations"], "annotations", path)
    if not data["images"]:
        raise DatasetError(f"{path}: the 'images' section is empty")
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}] (id {ann['id']})"
        _annotation_values(ann, where)
        _annotation_references(ann, where, image_ids, category_ids)
        _annotation_bbox(ann, where)
