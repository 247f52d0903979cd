"""Running a model over a shard of images: decode in DataLoader workers, forward, postprocess, stream.

An image that cannot be read or preprocessed becomes a ``failed`` line in the stream, not an
exception; the caller decides how many failures are too many.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from dfine_bench.adapters.base import DetectorAdapter, Preprocessor
from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data.dataset import read_image
from dfine_bench.evaluation.inference_backend import Forward
from dfine_bench.evaluation.predictions import PredictionStream
from dfine_bench.utils.progress import Progress

log = logging.getLogger(__name__)


class _ImageDataset(Dataset):
    """Decodes and preprocesses one image in a worker; a failure becomes a marker, not an exception."""

    def __init__(
        self,
        items: list[tuple[int, Path]],
        preprocessor: Preprocessor,
        read: Callable[[Path], Any] = read_image,
    ) -> None:
        self.items, self.preprocessor, self.read = items, preprocessor, read

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id, path = self.items[index]
        try:
            image = self.read(path)  # the dataset's reader: its EXIF mode (data/images.py)
            return {
                "image_id": image_id,
                "pixels": self.preprocessor(image),
                "size": image.shape[:2],
                "error": None,
            }
        except Exception as exc:  # any decode/preprocess error is counted, not fatal
            return {
                "image_id": image_id,
                "pixels": None,
                "size": None,
                "error": f"{type(exc).__name__}: {exc}",
            }


class _Collate:
    """Batches the readable images with the family's own collate; failures ride along by id."""

    def __init__(self, preprocessor: Preprocessor) -> None:
        self.preprocessor = preprocessor

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ok = [s for s in samples if s["error"] is None]
        batch: dict[str, Any] = {
            "failed": [(s["image_id"], s["error"]) for s in samples if s["error"] is not None],
            "image_ids": [s["image_id"] for s in ok],
            "sizes": [(int(s["size"][0]), int(s["size"][1])) for s in ok],
            "pixels": None,
            "extras": {},
        }
        if ok:
            batch["pixels"], batch["extras"] = self.preprocessor.collate([s["pixels"] for s in ok])
        return batch


def _synchronize(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def infer_shard(
    adapter: DetectorAdapter,
    items: list[tuple[int, Path]],
    stream: PredictionStream,
    cfg: EvaluationSettings,
    device: str,
    progress: Progress,
    forward: Forward,
    read: Callable[[Path], Any] = read_image,
) -> tuple[float, int, int]:
    """Run the shard; returns (seconds inside forward, max detections per image, failures)."""
    pre = adapter.preprocessor()
    loader = DataLoader(
        _ImageDataset(items, pre, read),
        batch_size=max(1, int(cfg.batch_size)),
        shuffle=False,
        num_workers=max(0, int(cfg.num_workers)),
        collate_fn=_Collate(pre),
        pin_memory=device.startswith("cuda"),
    )
    forward_s, max_dets, failures = 0.0, 0, 0
    with torch.inference_mode():
        for batch in loader:
            for image_id, error in batch["failed"]:
                failures += 1
                log.warning("image %s could not be read: %s", image_id, error)
                stream.write_failed(image_id, error)
            if batch["pixels"] is not None:
                pixels = batch["pixels"].to(adapter.device, adapter.dtype, non_blocking=True)
                extras = {k: v.to(adapter.device) for k, v in batch["extras"].items()}
                _synchronize(device)
                start = time.perf_counter()
                raw = forward(pixels, **extras)
                _synchronize(device)
                forward_s += time.perf_counter() - start
                for image_id, dets in zip(batch["image_ids"], adapter.postprocess(raw, batch["sizes"])):
                    rows = _rows(dets)
                    max_dets = max(max_dets, len(rows))
                    stream.write_ok(image_id, rows)
            stream.flush()
            progress.update(len(batch["image_ids"]) + len(batch["failed"]))
    return forward_s, max_dets, failures


def _rows(dets: Any) -> list[list[float]]:
    boxes = dets.boxes.detach().float().cpu()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    scores = dets.scores.detach().float().cpu().tolist()
    cats = dets.category_ids.detach().cpu().tolist()
    return [[*b, s, int(c)] for b, s, c in zip(xywh, scores, cats)]
