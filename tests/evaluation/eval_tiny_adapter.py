"""A tiny rule-based detector for the evaluation tests (no training, no downloads).

It finds the flat-coloured boxes the generated dataset draws: for grid cells at four
scales it takes the tight box around bright pixels in the cell and names the class by the
nearest palette colour. It is a real ``DetectorAdapter`` (preprocessor, forward,
postprocess with a D-FINE-style top-k over query x class scores, no threshold), so it
exercises the whole loop, and it scores well above zero AP on generated data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfine_bench.adapters.base import (
    Detections,
    DetectorAdapter,
    ModelSpec,
    Preprocessor,
    RawOutputs,
    WeightsInfo,
)
from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS
from dfine_bench.data.generated import PALETTE

INPUT = (192, 256)  # (h, w), divisible by the finest grid (8)
GRIDS = (1, 2, 4, 8)
NUM_CLASSES = 80


class ResizePreprocessor(Preprocessor):
    def __init__(self, size: tuple[int, int] = INPUT) -> None:
        self.size = size

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)
        return F.interpolate(t[None], size=self.size, mode="bilinear", align_corners=False)[0]


class BrightBoxNet(nn.Module):
    """(B, 3, H, W) in [0, 1] -> logits (B, Q, 80) and boxes (B, Q, 4) normalised cxcywh."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))  # gives the module a device and dtype
        palette = torch.tensor(PALETTE, dtype=torch.float32) / 255.0
        self.register_buffer("palette", palette)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = x.shape
        x = x * self.gain
        mask = (x.amax(dim=1) > 0.3).float()  # background is 24/255
        ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1).expand(b, h, w)
        xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w).expand(b, h, w)
        all_logits, all_boxes = [], []
        for g in GRIDS:

            def cells(t: torch.Tensor, g: int = g) -> torch.Tensor:
                # (B, [C,] H, W) -> (B, g*g, [C,] cell pixels)
                lead = t.shape[1:-2]
                t = t.reshape(b, *lead, g, h // g, g, w // g)
                if lead:
                    t = t.permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, *lead, -1)
                else:
                    t = t.permute(0, 1, 3, 2, 4).reshape(b, g * g, -1)
                return t

            m = cells(mask)
            big = torch.tensor(1e9, dtype=x.dtype, device=x.device)
            x0 = torch.where(m > 0, cells(xs), big).amin(-1)
            y0 = torch.where(m > 0, cells(ys), big).amin(-1)
            x1 = torch.where(m > 0, cells(xs), -big).amax(-1) + 1
            y1 = torch.where(m > 0, cells(ys), -big).amax(-1) + 1
            count = m.sum(-1)
            has = count > 0
            x0, y0, x1, y1 = (torch.where(has, v, torch.zeros_like(v)) for v in (x0, y0, x1, y1))
            colour = (cells(x) * m[:, :, None]).sum(-1) / count.clamp(min=1)[..., None]  # (B, Q, 3)
            dist = torch.cdist(colour, self.palette[None].expand(b, -1, -1))  # (B, Q, 12)
            fill = count / ((x1 - x0) * (y1 - y0)).clamp(min=1)
            score = torch.exp(-8 * dist) * fill[..., None] * has[..., None]
            logits = torch.zeros(b, g * g, NUM_CLASSES, dtype=x.dtype, device=x.device)
            logits[..., : len(PALETTE)] = score
            boxes = torch.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], -1)
            all_logits.append(logits)
            all_boxes.append(boxes)
        return {"logits": torch.cat(all_logits, 1), "pred_boxes": torch.cat(all_boxes, 1)}


class TinyAdapter(DetectorAdapter):
    def __init__(self, *, name: str = "tiny_rule", label_set: str = "coco80", top_k: int = 100) -> None:
        num_classes = 366 if label_set == "obj365" else NUM_CLASSES
        self.spec = ModelSpec(
            name=name,
            family="test",
            input_size=INPUT,
            num_classes=num_classes,
            label_set=label_set,
            detections_per_image=top_k,
        )
        self.model = BrightBoxNet()
        self.weights = WeightsInfo(source="random-init", seed=0)
        self.label_to_category = (
            list(COCO80_CATEGORY_IDS) if label_set == "coco80" else list(range(num_classes))
        )
        self.top_k = top_k

    def preprocessor(self) -> Preprocessor:
        return ResizePreprocessor()

    def forward(self, pixel_values: torch.Tensor, **extras: torch.Tensor) -> RawOutputs:
        return self.model(pixel_values)

    def postprocess(self, outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        logits, boxes = outputs["logits"], outputs["pred_boxes"]
        _, q, c = logits.shape
        scores, index = logits.flatten(1).topk(min(self.top_k, q * c), dim=1)
        labels, query = index % c, index // c
        cats = torch.tensor(self.label_to_category, dtype=torch.int64)
        out = []
        for i, (h, w) in enumerate(original_sizes):
            bx = boxes[i, query[i]]
            xyxy = torch.stack(
                [(bx[:, 0] - bx[:, 2] / 2) * w, (bx[:, 1] - bx[:, 3] / 2) * h, (bx[:, 0] + bx[:, 2] / 2) * w,
                 (bx[:, 1] + bx[:, 3] / 2) * h], -1,
            )  # fmt: skip
            out.append(Detections(xyxy.float(), scores[i].float(), labels[i], cats[labels[i]]))
        return out
