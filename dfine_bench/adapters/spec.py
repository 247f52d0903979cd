"""``ModelSpec``: what a registered model is, known without building it and without torch; and
``WeightsRequest``, which weights ``create_model`` is asked to load.

Kept apart from ``base.py`` (which needs torch for the adapter interface) so that the registry,
``dfine-bench list models`` and the claims can read specs without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The separator of a timm-style release tag: ``dfine_s.obj2coco`` is D-FINE-S's ``obj2coco`` release.
TAG_SEP = "."


@dataclass(frozen=True)
class WeightsRequest:
    """A parsed ``weights=`` argument: ``kind`` is random-init, auto, hub, local or file."""

    kind: str
    value: str | None = None

    @property
    def label(self) -> str:
        """``random-init``, ``auto``, or what the request names (a hub id or a path)."""
        return self.value or self.kind


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is, known without building it (cheap: used by ``list``).

    ``fdr`` says whether the decoder refines box *distributions* (D-FINE's Fine-grained
    Distribution Refinement) and ``fdr_bins`` its number of bins (``max_num_bins``);
    ``go_lsd`` whether the released weights were trained with GO-LSD self-distillation.
    ``num_parameters`` counts every parameter of the model as built with its default head
    (``sum(p.numel())``; None: not known without building it). ``releases`` maps a weights
    release tag (``coco``, ``obj2coco``, ``obj365``) to the hub ids and official checkpoint file
    names that are that release: ``create_model("dfine_s.obj2coco")`` loads it, and the weights
    loader records the tag of whatever it loaded.
    """

    name: str
    family: str
    input_size: tuple[int, int]  # (height, width) the model is benchmarked at
    num_classes: int
    label_set: str = "coco80"  # which label-index -> category mapping the head uses
    fdr: bool = False
    fdr_bins: int | None = None
    go_lsd: bool = False
    hub_ids: tuple[str, ...] = ()  # known Hugging Face hub ids for released weights
    weights_formats: tuple[str, ...] = ("random-init", "hub", "local")
    num_queries: int | None = None
    detections_per_image: int | None = None  # what the official postprocessor keeps
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    num_parameters: int | None = None
    releases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def release_of(self, identifier: str | None) -> str | None:
        """The release tag whose hub id or official file name is exactly ``identifier`` (a hub id,
        or a checkpoint path whose file name is compared); None for anything else."""
        if not identifier:
            return None
        ident = identifier.strip()
        filename = ident.replace("\\", "/").rsplit("/", 1)[-1]
        for tag, sources in self.releases.items():
            for source in sources:
                if ident == source or ("/" not in source and filename == source):
                    return tag
        return None

    def tag(self, release: str | None) -> str | None:
        """``name.release`` (timm's ``model.pretrained_tag``), or None without a release."""
        return f"{self.name}{TAG_SEP}{release}" if release else None


def split_tag(name: str) -> tuple[str, str | None]:
    """``dfine_s.obj2coco`` -> (``dfine_s``, ``obj2coco``); a plain name has no tag."""
    base, sep, tag = name.partition(TAG_SEP)
    return (base, tag) if sep and tag else (name, None)
