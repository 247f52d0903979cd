"""Checking, before any image is read, that a model's classes map onto a dataset's categories.

A model predicts class indices; ``adapter.label_to_category`` turns them into category
ids. The check fails when the map has the wrong length, when the dataset has categories
the model can never predict, or when ids coincide but mean different things (an
Objects365 head on COCO: its ids 1..90 are other classes than COCO's).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS, COCO80_NAMES, label_to_category
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.errors import DatasetError

log = logging.getLogger("dfine_bench")
_COCO_NAMES = dict(zip(COCO80_CATEGORY_IDS, COCO80_NAMES))


def _looks_like_coco(names: dict[int, str]) -> bool:
    return all(names.get(cid, "").lower() == n for cid, n in _COCO_NAMES.items())


def _fits(mapping: Sequence[int], names: dict[int, str]) -> bool:
    """Every dataset category is predicted, and COCO ids mean COCO's classes."""
    for cid in set(mapping) & set(names):
        expected = _COCO_NAMES.get(cid)
        if expected is not None and names[cid].lower() != expected:
            return False
    return not set(names) - set(mapping)


def by_name(mapping: Sequence[int], names: dict[int, str]) -> list[int] | None:
    """A COCO head's map onto a dataset whose category names are all COCO's under other ids (export
    tools renumber them 0..79 or 1..80): class -> the dataset's id of the same name. None when a
    name is not COCO's (or repeats). Classes the dataset lacks get ids it does not use."""
    ids = {n.lower(): cid for cid, n in names.items()}
    if not ids or len(ids) != len(names) or not set(ids) <= set(_COCO_NAMES.values()):
        return None
    spare = max(names, default=0) + 1
    out: list[int] = []
    for cid in mapping:
        name = _COCO_NAMES.get(cid)
        if name is not None and name in ids:
            out.append(ids[name])
        elif cid in names:  # an id the dataset gives another class: moved out of its way
            out.append(spare)
            spare += 1
        else:
            out.append(cid)
    return out


def _note_by_name(
    dataset: ResolvedDataset, names: dict[int, str], mapped: list[int], original: list[int]
) -> None:
    pairs = sorted((new, old) for new, old in zip(mapped, original) if new in names and new != old)
    shown = ", ".join(f"{names[new]} {old} -> {new}" for new, old in pairs[:3])
    note = (
        f"category ids mapped by name: the {len(names)} categories of {dataset.annotations.name} are COCO "
        f"class names under other ids (e.g. {shown}); the model's COCO classes are matched to them by name"
    )
    notes = dataset.extra.setdefault("notes", [])
    if note not in notes:
        notes.append(note)
        log.warning("DATA: %s", note)
    dataset.extra["category_mapping"] = "by name"


def check_label_set(spec: Any, dataset: ResolvedDataset) -> None:
    """At start-up, from the spec alone: a COCO head on a dataset whose categories fit neither by
    id nor by name is refused (``DatasetError``, exit 2) before any model is built."""
    if spec.label_set not in ("coco80", "coco91"):
        return
    mapping = label_to_category(spec.label_set, spec.num_classes)
    names = dataset.category_names()
    if not _fits(mapping, names) and by_name(mapping, names) is None:
        _refuse(mapping, spec.label_set, f"model {spec.name!r} (label_set {spec.label_set!r})", dataset)


def check_label_map(adapter_or_label_to_category: Any, dataset: ResolvedDataset) -> dict[int, int]:
    """Raise a ``DatasetError`` unless the model predicts every dataset category, with the same meaning.

    Accepts an adapter (its ``label_to_category``, ``spec.label_set`` and ``spec.num_classes``
    are used) or a plain sequence (class index -> category id). Returns the map as a dict. A COCO
    head on COCO's names under other ids is mapped by name: the adapter's ``label_to_category`` is
    replaced, and the dataset's notes (hence its records) and the console say so.
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
    if label_set in ("coco80", "coco91") and not _fits(mapping, names):
        # from the head's own COCO map, so that a second check (the loop's, after the runner's) keeps it
        coco = (
            label_to_category(label_set, len(mapping))
            if label_set == "coco91" or len(mapping) == 80
            else mapping
        )
        mapped = by_name(coco, names)
        if mapped is not None:
            adapter.label_to_category = mapped
            _note_by_name(dataset, names, mapped, coco)
            return dict(enumerate(mapped))
    _refuse(mapping, label_set, who, dataset)
    return dict(enumerate(mapping))


def _refuse(mapping: Sequence[int], label_set: str | None, who: str, dataset: ResolvedDataset) -> None:
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
                    f"id {cid} {names[cid]!r}, and its category names are not all COCO's either (so they "
                    "cannot be matched by name): give the dataset COCO's ids or names"
                )
    missing = sorted(set(names) - set(mapping))
    if missing:
        shown = ", ".join(f"{cid} ({names[cid]})" for cid in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise DatasetError(
            f"{who} cannot predict {len(missing)} categories of {where}: {shown}{more}. "
            "Evaluate a model trained on these classes (or set model.num_classes / the label map to match)"
        )
