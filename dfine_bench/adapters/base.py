"""The one interface every detector implements, and the types that cross it.

An adapter wraps one detector (a ``torch.nn.Module``) and knows its family's rules:
how to preprocess images, how to read the raw outputs, how to export a tensor-only
module for the profiling backends. Everything downstream (evaluation, profiling,
reports) talks only to this interface.

Flow for one batch::

    batch = adapter.preprocess(images)          # PreprocessedBatch (pixel_values, original sizes)
    raw = adapter.forward(batch.pixel_values)   # RawOutputs: named tensors
    dets = adapter.postprocess(raw, batch.original_sizes)  # one Detections per image
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dfine_bench.adapters.spec import ModelSpec  # torch-free; re-exported here for existing imports

#: Named output tensors of a model's forward, e.g. {"logits": (B,Q,C), "pred_boxes": (B,Q,4)}.
RawOutputs = Mapping[str, torch.Tensor]

#: One image as the data layer hands it over: HWC uint8 RGB.
Image = np.ndarray


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights of a built adapter came from: part of every record's provenance.

    ``source`` is one of ``random-init``, ``hub``, ``local``, ``official``, ``fixture`` (the
    project's own trained fixture, ``dfine_fixture``).
    ``sha256`` hashes the weights file(s) as read from disk (None for random-init).
    """

    source: str
    identifier: str | None = None  # hub id, directory or file path
    sha256: str | None = None
    seed: int | None = None  # for random-init
    revision: str | None = None
    release: str | None = None  # the release tag (coco, obj2coco, ...) the loader recognised, if any

    @property
    def is_random_init(self) -> bool:
        return self.source == "random-init"

    @property
    def label(self) -> str:
        """A short, honest description for tables: never mistakes random weights for real ones."""
        if self.is_random_init:
            return f"random-init (seed {self.seed})"
        if self.source == "fixture":  # trained here on generated data: real, but never a COCO model
            return "fixture weights, trained on generated data"
        return f"{self.source}: {self.identifier}"


@dataclass
class PreprocessedBatch:
    """Model-ready input for a batch plus what postprocessing needs to map boxes back."""

    pixel_values: torch.Tensor  # (B, 3, H, W)
    original_sizes: list[tuple[int, int]]  # (height, width) of each original image
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. pixel_mask


@dataclass
class Detections:
    """Detections for one image, in the original image's pixel coordinates.

    ``labels`` are the model's class indices; ``category_ids`` the dataset's category ids
    they map to (COCO: 1..90 with gaps), filled by ``postprocess`` from the adapter's label map.
    """

    boxes: torch.Tensor  # (N, 4) float32, xyxy pixels of the original image
    scores: torch.Tensor  # (N,) float32
    labels: torch.Tensor  # (N,) int64 model class indices
    category_ids: torch.Tensor  # (N,) int64 dataset category ids

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to_coco(self, image_id: int) -> list[dict[str, Any]]:
        """COCO results format: one dict per detection with an xywh box."""
        boxes = self.boxes.detach().float().cpu().numpy()
        scores = self.scores.detach().float().cpu().numpy()
        cats = self.category_ids.detach().cpu().numpy()
        return [
            {
                "image_id": int(image_id),
                "category_id": int(c),
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                "score": float(s),
            }
            for b, s, c in zip(boxes, scores, cats)
        ]


class Preprocessor(abc.ABC):
    """Turns one decoded image into a model-ready CHW tensor.

    Kept apart from the adapter (no model inside) so DataLoader workers can pickle it
    and preprocess while the model runs.
    """

    @abc.abstractmethod
    def __call__(self, image: Image) -> torch.Tensor:
        """HWC uint8 RGB -> CHW float tensor."""

    def collate(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Stack per-image tensors into a batch; families with variable sizes pad and add a mask."""
        return torch.stack(list(tensors)), {}


class DetectorAdapter(abc.ABC):
    """Base class of every model adapter. Subclasses set ``spec`` and build ``model``."""

    spec: ModelSpec
    model: torch.nn.Module
    weights: WeightsInfo
    #: model class index -> dataset category id (e.g. COCO's 80 indices -> ids among 1..90)
    label_to_category: Sequence[int]

    # -- building -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> DetectorAdapter:
        self.model.to(device=device, dtype=dtype)
        return self

    def eval(self) -> DetectorAdapter:
        self.model.eval()
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def parameter_groups(self) -> dict[str, int]:
        """Parameters per part (backbone, encoder, decoder, ...); families override for their layout."""
        return {"total": self.num_parameters()}

    # -- the pipeline ---------------------------------------------------------------------
    @abc.abstractmethod
    def preprocessor(self) -> Preprocessor:
        """A picklable per-image preprocessor implementing this family's rule."""

    def preprocess(self, images: Sequence[Image]) -> PreprocessedBatch:
        pre = self.preprocessor()
        tensors = [pre(im) for im in images]
        pixel_values, extras = pre.collate(tensors)
        sizes = [(int(im.shape[0]), int(im.shape[1])) for im in images]
        return PreprocessedBatch(pixel_values=pixel_values, original_sizes=sizes, extras=extras)

    @abc.abstractmethod
    def forward(self, pixel_values: torch.Tensor, **extras: torch.Tensor) -> RawOutputs:
        """Run the model; returns named raw output tensors (no postprocessing)."""

    @abc.abstractmethod
    def postprocess(self, outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """The family's official postprocessor (D-FINE/RT-DETR: top-300 query-class scores, no threshold)."""

    @torch.inference_mode()
    def predict(self, images: Sequence[Image]) -> list[Detections]:
        batch = self.preprocess(images)
        pv = batch.pixel_values.to(self.device, self.dtype)
        extras = {k: v.to(self.device) for k, v in batch.extras.items()}
        return self.postprocess(self.forward(pv, **extras), batch.original_sizes)

    # -- hooks for the profiling backends -------------------------------------------------
    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the tensors ``export_module`` returns, in order."""
        return ("logits", "pred_boxes")

    def export_module(self) -> torch.nn.Module:
        """A module mapping ``pixel_values`` to a tuple of tensors (``output_names`` order).

        ONNX export, TensorRT and ``torch.compile`` use this; ``outputs_from_tuple`` turns
        their results back into ``RawOutputs`` for ``postprocess``.
        """
        return _TupleOutputs(self)

    def outputs_from_tuple(self, values: Sequence[torch.Tensor]) -> RawOutputs:
        return dict(zip(self.output_names, values))

    def example_input(self, batch_size: int = 1, input_size: tuple[int, int] | None = None) -> torch.Tensor:
        h, w = input_size or self.spec.input_size
        gen = torch.Generator().manual_seed(0)
        return torch.rand(batch_size, 3, h, w, generator=gen).to(self.device, self.dtype)

    def describe(self) -> dict[str, Any]:
        """Model facts for the result record."""
        return {
            "name": self.spec.name,
            "family": self.spec.family,
            "input_size": list(self.spec.input_size),
            "num_classes": self.spec.num_classes,
            "label_set": self.spec.label_set,
            "fdr": self.spec.fdr,
            "fdr_bins": self.spec.fdr_bins,
            "go_lsd": self.spec.go_lsd and not self.weights.is_random_init,
            "num_parameters": self.num_parameters(),
            "weights_source": self.weights.source,
            "weights_id": self.weights.identifier,
            "weights_sha256": self.weights.sha256,
            "weights_seed": self.weights.seed,
            "weights_label": self.weights.label,
            # written by the weights loader from the spec's release data, never guessed from names
            "weights_release": self.weights.release,
            "weights_tag": self.spec.tag(self.weights.release),
            "random_init": self.weights.is_random_init,
        }


class _TupleOutputs(torch.nn.Module):
    """Wraps an adapter's forward so it returns a plain tuple (what exporters want)."""

    def __init__(self, adapter: DetectorAdapter) -> None:
        super().__init__()
        self.adapter = adapter
        self.inner = adapter.model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.adapter.forward(pixel_values)
        return tuple(out[name] for name in self.adapter.output_names)


#: Factory signature stored in the registry: builds an adapter from weights options.
AdapterFactory = Callable[..., DetectorAdapter]
