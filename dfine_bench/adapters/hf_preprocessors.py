"""Image preprocessors of the transformers-based families: decoded RGB image in, CHW tensor out.

* ``ResizePreprocessor``: fixed-size resize to [0, 1] (D-FINE, RT-DETR, DEIM);
* ``DetrPreprocessor``: the DETR rule (shortest edge 800 / longest 1333, ImageNet normalisation,
  padding + pixel mask when batching).

``dfine_bench.adapters.hf_common`` re-exports both, so family modules import them from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage

from dfine_bench.adapters.base import Image, Preprocessor
from dfine_bench.errors import DfineBenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_image(image: Image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise DfineBenchError(
            f"expected an HWC uint8 RGB image, got shape {array.shape} dtype {array.dtype}; "
            "decode images with dfine_bench.data before preprocessing"
        )
    return array


def _to_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


@dataclass(frozen=True)
class ResizePreprocessor(Preprocessor):
    """D-FINE / RT-DETR rule: resize to ``size`` (H, W) with PIL bilinear, scale to [0, 1].

    The official eval pipeline is ``T.Resize`` on a PIL image then ``ToTensor``: no aspect
    preservation, no mean/std normalisation.
    """

    size: tuple[int, int] = (640, 640)

    def __call__(self, image: Image) -> torch.Tensor:
        array = _check_image(image)
        height, width = self.size
        resized = PILImage.fromarray(array).resize((width, height), PILImage.Resampling.BILINEAR)
        return _to_chw(np.asarray(resized, dtype=np.float32) / 255.0)


@dataclass(frozen=True)
class DetrPreprocessor(Preprocessor):
    """DETR-family rule: shortest edge ``shortest`` capped so the longest is at most ``longest``,
    bilinear resize, ImageNet normalisation; ``collate`` pads bottom/right and adds ``pixel_mask``."""

    shortest: int = 800
    longest: int = 1333
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) after resizing: transformers' own DETR rule (``get_size_with_aspect_ratio``)."""
        from transformers.image_transforms import get_size_with_aspect_ratio

        out_h, out_w = get_size_with_aspect_ratio((height, width), self.shortest, self.longest)
        return int(out_h), int(out_w)

    def __call__(self, image: Image) -> torch.Tensor:
        array = _check_image(image)
        out_h, out_w = self.output_size(array.shape[0], array.shape[1])
        resized = np.asarray(
            PILImage.fromarray(array).resize((out_w, out_h), PILImage.Resampling.BILINEAR), dtype=np.float32
        )
        normalised = (resized / 255.0 - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return _to_chw(normalised.astype(np.float32))

    def collate(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        height = max(int(t.shape[1]) for t in tensors)
        width = max(int(t.shape[2]) for t in tensors)
        batch = torch.zeros(len(tensors), 3, height, width, dtype=tensors[0].dtype)
        mask = torch.zeros(len(tensors), height, width, dtype=torch.long)
        for i, tensor in enumerate(tensors):
            batch[i, :, : tensor.shape[1], : tensor.shape[2]] = tensor
            mask[i, : tensor.shape[1], : tensor.shape[2]] = 1
        return batch, {"pixel_mask": mask}
