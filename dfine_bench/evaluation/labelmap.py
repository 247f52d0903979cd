"""Checking, before any image is read, that a model's classes map onto a dataset's categories.

A model predicts class indices; ``adapter.label_to_category`` turns them into category
ids. The check fails when the map has the wrong length, when the dataset has categories
the model can never predict, or when ids coincide but mean different things (an
Objects365 head on COCO: its ids 1..90 are other classes than COCO's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS, COCO80_NAMES
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.errors import DatasetError

_COCO_NAMES = dict(zip(COCO80_CATEGORY_IDS, COCO80_NAMES))


def _looks_like_coco(names: dict[int, str]) -> bool:
    return all(names.get(cid, "").lower() == n for cid, n in _COCO_NAMES.items())


def check_label_map(adapter_or_label_to_category: Any, dataset: ResolvedDataset) -> dict[int, int]:
    """Raise a ``DatasetError`` unless the model predicts every dataset category, with the same meaning.

    Accepts an adapter (its ``label_to_category``, ``spec.label_set`` and ``spec.num_classes``
    are used) or a plain sequence (class index -> category id). Returns the map as a dict.
    """
    if isinstance(adapter_or_label_to_category, Sequence):
        mapping, label_set, num_classes, who = list(adapter_or_label_to_category), None, None, "the label map"
    else:
        adapter = adapter_or_label_to_category
        mapping = list(adapter.label_to_category)
        label_set, num_classes = adapter.spec.label_set, adapter.spec.num_classes
        who = f"model {adapter.spec.name!r} (label_set {label_set!r}, {num_classes} classes)"
    if num_classes is not None and len(mapping) != num_classes:
        raise DatasetError(f"{who}: label_to_category has {len(mapping)} entries for {num_classes} classes")
    names = dataset.category_names()
    where = f"dataset {dataset.name!r} ({dataset.annotations})"
    if label_set == "obj365" and _looks_like_coco(names):
        raise DatasetError(
            f"{who} cannot be evaluated on the COCO categories of {where}: its class ids are Objects365's. "
            "Use a COCO-80 head (weights of a *_coco or *_obj2coco release) or an Objects365 dataset"
        )
    if label_set in ("coco80", "coco91"):
        for cid in set(mapping) & set(names):
            expected = _COCO_NAMES.get(cid)
            if expected is not None and names[cid].lower() != expected:
                raise DatasetError(
                    f"{who} predicts COCO class {expected!r} as category id {cid}, but {where} calls "
                    f"id {cid} "
                    f"{names[cid]!r}: the dataset does not use COCO's category ids; give a matching label map"
                )
    missing = sorted(set(names) - set(mapping))
    if missing:
        shown = ", ".join(f"{cid} ({names[cid]})" for cid in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise DatasetError(
            f"{who} cannot predict {len(missing)} categories of {where}: {shown}{more}. "
            "Evaluate a model trained on these classes (or set model.num_classes / the label map to match)"
        )
    return dict(enumerate(mapping))
