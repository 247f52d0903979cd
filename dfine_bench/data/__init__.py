"""COCO-format datasets: the resolved dataset, its annotation checks and the generated stand-in."""

from dfine_bench.data.annotations import load_annotations, validate_annotations
from dfine_bench.data.dataset import ResolvedDataset, read_image
from dfine_bench.data.generated import GeneratedParams, generate_dataset
from dfine_bench.data.resolve import COCO_ENV, resolve_dataset

__all__ = [
    "COCO_ENV",
    "GeneratedParams",
    "ResolvedDataset",
    "generate_dataset",
    "load_annotations",
    "read_image",
    "resolve_dataset",
    "validate_annotations",
]
