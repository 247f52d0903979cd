"""Training batches from a COCO-format dataset: preprocessed images plus the model's targets.

Targets follow transformers' detection convention: per image, ``class_labels`` (model class
indices, the inverse of the adapter's label map) and ``boxes`` (cxcywh normalised to the original
image; D-FINE's fixed-size resize keeps normalised coordinates unchanged). Crowd regions are left
out, as COCO training does. The sample order is a pure function of (seed, step), so a resumed
run reads exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.errors import DatasetError
from dfine_bench.evaluation.labelmap import check_label_map

Target = dict[str, torch.Tensor]


def targets_for_image(
    annotations: Sequence[Mapping[str, Any]], height: int, width: int, category_to_label: Mapping[int, int]
) -> Target:
    """One image's training target: non-crowd boxes as normalised cxcywh and model class indices."""
    labels: list[int] = []
    boxes: list[list[float]] = []
    for ann in annotations:
        if ann.get("iscrowd", 0):
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0:
            continue
        labels.append(category_to_label[int(ann["category_id"])])
        boxes.append([(x + w / 2) / width, (y + h / 2) / height, w / width, h / height])
    return {
        "class_labels": torch.tensor(labels, dtype=torch.long),
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
    }


#: How far (pixels) a box may reach past the image border: COCO's own boxes overshoot by a fraction.
BORDER_SLACK = 1.0


def check_training_box(ann: Mapping[str, Any], entry: Mapping[str, Any], where: str) -> None:
    """A box the loss can learn from: finite, positive size, inside its image (``where`` names the file)."""
    x, y, w, h = (float(v) for v in ann["bbox"])
    what = f"{where}: annotation id {ann['id']} (image {entry['file_name']})"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise DatasetError(f"{what} has a non-finite bbox {ann['bbox']!r}; fix or remove it")
    if w <= 0 or h <= 0:
        raise DatasetError(f"{what} has a zero-size bbox {ann['bbox']!r}; fix or remove it")
    width, height = float(entry["width"]), float(entry["height"])
    s = BORDER_SLACK
    if x < -s or y < -s or x + w > width + s or y + h > height + s:
        raise DatasetError(
            f"{what} has a bbox {ann['bbox']!r} outside its {width:g}x{height:g} image; fix or remove it"
        )


def check_training_data(
    dataset: ResolvedDataset, by_image: Mapping[int, Sequence[Mapping[str, Any]]]
) -> None:
    """Training data is checked like evaluation data, and for what the loss needs, before the first
    step: every box, at least one non-crowd box, and every image decodes (``scan(decode=True)``:
    a corrupt file fails now, not when a batch happens to draw it; sizes match the annotation)."""
    dataset.scan(decode=True)  # first: the boxes below are checked in the images' verified frame
    where = str(dataset.annotations)
    ids = dataset.image_ids()
    trainable = 0
    for image_id in ids:
        entry = dataset.image_entry(image_id)
        for ann in by_image.get(image_id, []):
            if not ann.get("iscrowd", 0):
                check_training_box(ann, entry, where)
                trainable += 1
    if not trainable:
        crowd = sum(len(by_image.get(i, [])) for i in ids)
        raise DatasetError(
            f"{where}: no box to train on ({crowd} annotation(s), all crowd regions, which training "
            "leaves out as COCO does); give it non-crowd annotations"
        )


class TrainingSamples:
    """The images and targets of one dataset, served as seeded, step-addressed batches."""

    def __init__(self, dataset: ResolvedDataset, adapter: DetectorAdapter) -> None:
        self.dataset = dataset
        self.preprocessor = adapter.preprocessor()
        if adapter.spec.label_set in ("coco80", "coco91"):
            check_label_map(adapter, dataset)  # COCO's names under other ids: mapped by name, and said
        category_to_label = {int(c): i for i, c in enumerate(adapter.label_to_category) if int(c) >= 0}
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in dataset.coco["annotations"]:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        unknown = sorted(
            {int(a["category_id"]) for anns in by_image.values() for a in anns} - set(category_to_label)
        )
        if unknown:
            raise DatasetError(
                f"{dataset.annotations}: category ids {unknown[:10]} have no class in {adapter.spec.name}'s "
                f"head ({adapter.spec.label_set}); train a model whose label set covers the dataset"
            )
        self.image_ids = dataset.image_ids()
        if not any(by_image.get(i) for i in self.image_ids):
            raise DatasetError(f"{dataset.annotations}: no annotations to train on")
        check_training_data(dataset, by_image)
        self.targets: dict[int, Target] = {}
        for image_id in self.image_ids:
            entry = dataset.image_entry(image_id)
            self.targets[image_id] = targets_for_image(
                by_image.get(image_id, []), int(entry["height"]), int(entry["width"]), category_to_label
            )

    def __len__(self) -> int:
        return len(self.image_ids)

    def indices(self, step: int, batch_size: int, seed: int) -> list[int]:
        """Dataset positions of batch ``step``: epochs are seeded permutations, read in order."""
        n = len(self.image_ids)
        start = step * batch_size
        out: list[int] = []
        while len(out) < batch_size:
            epoch, offset = divmod(start + len(out), n)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
            take = min(batch_size - len(out), n - offset)
            out.extend(int(i) for i in perm[offset : offset + take])
        return out

    def batch(
        self, step: int, batch_size: int, seed: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[Target]]:
        """(pixel_values, extra model inputs such as ``pixel_mask``, targets) of batch ``step``."""
        ids = [self.image_ids[i] for i in self.indices(step, batch_size, seed)]
        tensors = [self.preprocessor(self.dataset.load_image(i)) for i in ids]
        pixel_values, extras = self.preprocessor.collate(tensors)
        return pixel_values, extras, [self.targets[i] for i in ids]
