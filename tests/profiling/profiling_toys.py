"""A small DETR-shaped toy adapter for the profiling tests (seconds, not minutes, on 2 CPU cores).

``ToyDetNet`` has a conv backbone, a linear "encoder", two heads used at inference and one
training-only auxiliary head that inference never runs (as D-FINE's per-layer score heads),
so the paper-style parameter count has something to leave out.

A module of its own, not the conftest: `from conftest import` resolves to whichever
conftest pytest loaded last, which depends on the folders a run is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dfine_bench.adapters.base import (
    Detections,
    DetectorAdapter,
    ModelSpec,
    Preprocessor,
    RawOutputs,
    WeightsInfo,
)

NUM_QUERIES, NUM_CLASSES = 10, 5


class ToyDetNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2),
        )
        self.encoder = torch.nn.Linear(16 * 4, 64)
        self.class_head = torch.nn.Linear(64, NUM_QUERIES * NUM_CLASSES)
        self.box_head = torch.nn.Linear(64, NUM_QUERIES * 4)
        self.aux_head = torch.nn.Linear(64, 1000)  # training-only: never run at inference

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu(self.encoder(self.backbone(x).flatten(1)))
        logits = self.class_head(f).view(-1, NUM_QUERIES, NUM_CLASSES)
        boxes = self.box_head(f).view(-1, NUM_QUERIES, 4).sigmoid() * 0.5 + 0.25
        return logits, boxes


class ToyPre(Preprocessor):
    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().unsqueeze(0) / 255.0
        return torch.nn.functional.interpolate(t, size=self.size, mode="bilinear", align_corners=False)[0]


class ToyAdapter(DetectorAdapter):
    def __init__(self, input_size: tuple[int, int] = (64, 64), seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.spec = ModelSpec(name="toy_prof", family="toy", input_size=input_size, num_classes=NUM_CLASSES)
        self.model = ToyDetNet().eval()
        self.weights = WeightsInfo(source="random-init", seed=seed)
        self.label_to_category = list(range(1, NUM_CLASSES + 1))

    def preprocessor(self) -> Preprocessor:
        return ToyPre(self.spec.input_size)

    def forward(self, pixel_values: torch.Tensor, **extras: torch.Tensor) -> RawOutputs:
        logits, boxes = self.model(pixel_values)
        return {"logits": logits, "pred_boxes": boxes}

    def parameter_groups(self) -> dict[str, int]:
        m = self.model
        count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
        return {
            "backbone": count(m.backbone),
            "encoder": count(m.encoder),
            "decoder": count(m.class_head) + count(m.box_head) + count(m.aux_head),
            "total": self.num_parameters(),
        }

    def postprocess(self, outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        logits, boxes = outputs["logits"].float(), outputs["pred_boxes"].float()
        scores = logits.sigmoid().flatten(1)
        top, index = scores.topk(min(20, scores.shape[1]), dim=1)
        labels, query = index % NUM_CLASSES, index // NUM_CLASSES
        cats = torch.tensor(self.label_to_category)
        out = []
        for b, (h, w) in enumerate(original_sizes):
            cx, cy, bw, bh = boxes[b, query[b]].unbind(-1)
            xyxy = torch.stack(
                [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1
            )
            out.append(Detections(boxes=xyxy, scores=top[b], labels=labels[b], category_ids=cats[labels[b]]))
        return out


def inference_params(adapter: ToyAdapter) -> int:
    """What a deploy-mode count should give for the toy: everything but the training-only head."""
    return adapter.num_parameters() - sum(p.numel() for p in adapter.model.aux_head.parameters())
