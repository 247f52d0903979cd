"""Label maps: which dataset category id each model class index stands for.

COCO-80 heads (``label_set="coco80"``) predict the 80 COCO detection classes in the order of
their category ids, which run 1..90 with gaps (the official D-FINE/RT-DETR code remaps them the
same way, ``remap_mscoco_category: True``).

Objects365 heads (``label_set="obj365"``) have 366 outputs and are trained on the raw
Objects365 category ids (the official ``obj365_detection.yml`` sets ``num_classes: 366`` and
``remap_mscoco_category: False``): class index ``i`` *is* category id ``i``; ids run 1..365 and
index 0 is never a real class.

COCO-91 heads (``label_set="coco91"``, the DETR family's released checkpoints) have 91 outputs
indexed by the COCO category id itself (ids that COCO never uses are "N/A" classes).
"""

from __future__ import annotations

from collections.abc import Sequence

from dfine_bench.errors import ConfigError

#: The 80 COCO detection category ids, in the order COCO-80 heads predict them.
COCO80_CATEGORY_IDS: tuple[int, ...] = (
    *range(1, 12),
    *range(13, 26),
    27,
    28,
    *range(31, 45),
    *range(46, 66),
    67,
    70,
    *range(72, 83),
    *range(84, 91),
)

#: Names of the COCO-80 classes, index-aligned with ``COCO80_CATEGORY_IDS``.
COCO80_NAMES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

#: Objects365 heads: 366 outputs, index == category id (index 0 unused).
OBJ365_NUM_CLASSES = 366

#: Label sets an adapter's head can use (``ModelSpec.label_set``).
LABEL_SETS = ("coco80", "coco91", "obj365", "identity")


def label_to_category(label_set: str, num_classes: int) -> list[int]:
    """Model class index -> dataset category id for a head of ``num_classes`` outputs.

    ``identity`` (and ``obj365``) map index ``i`` to id ``i``; ``coco80`` needs exactly 80 classes.
    """
    if label_set == "coco80":
        if num_classes != len(COCO80_CATEGORY_IDS):
            raise ConfigError(
                f"label_set 'coco80' needs a head of 80 classes, got num_classes={num_classes}; "
                "use label_set 'identity' for a custom head"
            )
        return list(COCO80_CATEGORY_IDS)
    if label_set in ("coco91", "obj365", "identity"):
        return list(range(num_classes))
    raise ConfigError(f"unknown label_set {label_set!r}; choose one of {', '.join(LABEL_SETS)}")


def label_set_for(num_classes: int, default: str = "coco80") -> str:
    """The label set a head of ``num_classes`` outputs most likely uses."""
    if num_classes == len(COCO80_CATEGORY_IDS):
        return "coco80"
    if num_classes == OBJ365_NUM_CLASSES:
        return "obj365"
    return default if default != "coco80" else "identity"


def category_ids_for(labels: Sequence[int] | None = None) -> tuple[int, ...]:
    """The COCO-80 category ids (all, or for the given class indices)."""
    if labels is None:
        return COCO80_CATEGORY_IDS
    return tuple(COCO80_CATEGORY_IDS[i] for i in labels)
