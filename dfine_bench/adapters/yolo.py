"""YOLO baselines (YOLOv8, v9, v10, YOLO11) through the optional ``ultralytics`` package.

Their specs are always registered so ``dfine-bench list`` shows them; building one needs the
``yolo`` extra (``pip install 'dfine-bench[yolo]'``) and otherwise raises ``BackendUnavailable``.

As in the D-FINE paper, ``forward`` includes NMS (ultralytics' validation settings: confidence
0.001, IoU 0.7, at most 300 boxes), so timings of ``forward``/``export_module`` count it;
YOLOv10 is NMS-free and skips it. Preprocessing is ultralytics' letterbox: keep the aspect ratio,
fit into 640x640, pad with grey 114, scale to [0, 1].

Ultralytics ``.pt`` checkpoints are whole pickled models: loading one can run code, so it needs
``trust_remote_code=True``. ``random-init`` builds from the model's YAML and loads nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image as PILImage

from dfine_bench.adapters.base import (
    Detections,
    DetectorAdapter,
    Image,
    ModelSpec,
    Preprocessor,
    RawOutputs,
    WeightsInfo,
)
from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS
from dfine_bench.adapters.registry import register_model
from dfine_bench.adapters.spec import WeightsRequest
from dfine_bench.adapters.weights import RANDOM_INIT, sha256_files
from dfine_bench.errors import BackendUnavailable, CheckpointError

log = logging.getLogger(__name__)

PAD_VALUE = 114
CONF_THRESHOLD = 0.001
IOU_THRESHOLD = 0.7
MAX_DETECTIONS = 300

#: Released sizes per generation (names as ultralytics spells them).
YOLO_MODELS: dict[str, tuple[str, ...]] = {
    "yolov8": ("n", "s", "m", "l", "x"),
    "yolov9": ("t", "s", "m", "c", "e"),
    "yolov10": ("n", "s", "m", "b", "l", "x"),
    "yolo11": ("n", "s", "m", "l", "x"),
}


def ultralytics_available() -> bool:
    return importlib.util.find_spec("ultralytics") is not None


def letterbox_geometry(height: int, width: int, target: tuple[int, int]) -> tuple[float, float, float]:
    """(scale, pad_left, pad_top) of ultralytics' centred letterbox from (height, width) to ``target``."""
    th, tw = target
    scale = min(th / height, tw / width)
    new_h, new_w = round(height * scale), round(width * scale)
    return scale, (tw - new_w) / 2, (th - new_h) / 2


@dataclass(frozen=True)
class LetterboxPreprocessor(Preprocessor):
    """Fit the image into ``size`` keeping its aspect ratio, pad with grey, scale to [0, 1]."""

    size: tuple[int, int] = (640, 640)

    def __call__(self, image: Image) -> torch.Tensor:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise BackendUnavailable(f"expected an HWC uint8 RGB image, got {array.shape} {array.dtype}")
        height, width = array.shape[:2]
        scale, left, top = letterbox_geometry(height, width, self.size)
        new_w, new_h = round(width * scale), round(height * scale)
        resized = np.asarray(PILImage.fromarray(array).resize((new_w, new_h), PILImage.Resampling.BILINEAR))
        canvas = np.full((self.size[0], self.size[1], 3), PAD_VALUE, dtype=np.uint8)
        # ultralytics rounds the padding this way (top/left get the smaller half)
        y0, x0 = round(top - 0.1), round(left - 0.1)
        canvas[y0 : y0 + new_h, x0 : x0 + new_w] = resized
        return torch.from_numpy(canvas.transpose(2, 0, 1).astype(np.float32) / 255.0)


def unletterbox(boxes: torch.Tensor, original: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    """Map xyxy boxes on the letterboxed input back to the original image, clipped to it."""
    scale, left, top = letterbox_geometry(original[0], original[1], target)
    offset = torch.tensor([left, top, left, top], dtype=boxes.dtype, device=boxes.device)
    out = (boxes - offset) / scale
    out[:, 0::2] = out[:, 0::2].clamp(0, original[1])
    out[:, 1::2] = out[:, 1::2].clamp(0, original[0])
    return out


class YoloAdapter(DetectorAdapter):
    """An ultralytics detection model; ``forward`` returns NMS-ed, padded detections."""

    output_names_ = ("detections", "num_detections")

    def __init__(self, spec: ModelSpec, model: torch.nn.Module, weights: WeightsInfo) -> None:
        self.spec = spec
        self.model = model
        self.weights = weights
        self.label_to_category = list(COCO80_CATEGORY_IDS)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.output_names_

    def preprocessor(self) -> Preprocessor:
        return LetterboxPreprocessor(self.spec.input_size)

    def forward(self, pixel_values: torch.Tensor, **extras: torch.Tensor) -> RawOutputs:
        from ultralytics.utils.nms import non_max_suppression

        preds = self.model(pixel_values)
        preds = preds[0] if isinstance(preds, (list, tuple)) else preds
        if preds.shape[-1] == 6:  # end-to-end heads (YOLOv10) already give (B, N, xyxy+score+class)
            per_image = list(preds)
        else:
            per_image = non_max_suppression(
                preds, conf_thres=CONF_THRESHOLD, iou_thres=IOU_THRESHOLD, max_det=MAX_DETECTIONS
            )
        batch = torch.zeros(
            len(per_image), MAX_DETECTIONS, 6, dtype=pixel_values.dtype, device=pixel_values.device
        )
        counts = torch.zeros(len(per_image), dtype=torch.long, device=pixel_values.device)
        for i, det in enumerate(per_image):
            n = min(int(det.shape[0]), MAX_DETECTIONS)
            batch[i, :n] = det[:n, :6]
            counts[i] = n
        return {"detections": batch, "num_detections": counts}

    def postprocess(self, outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        table = torch.as_tensor(self.label_to_category, dtype=torch.long)
        results = []
        for i, size in enumerate(original_sizes):
            n = int(outputs["num_detections"][i])
            det = outputs["detections"][i, :n].float()
            labels = det[:, 5].long()
            results.append(
                Detections(
                    boxes=unletterbox(det[:, :4], size, self.spec.input_size),
                    scores=det[:, 4],
                    labels=labels,
                    category_ids=table.to(labels.device)[labels],
                )
            )
        return results


def _build(
    spec: ModelSpec,
    *,
    weights: str | WeightsRequest = RANDOM_INIT,
    seed: int = 0,
    trust_remote_code: bool = False,
    input_size: tuple[int, int] | None = None,
    device: str = "cpu",
    **_: Any,
) -> DetectorAdapter:
    if not ultralytics_available():
        raise BackendUnavailable(
            f"{spec.name} needs the ultralytics package: install dfine-bench[yolo] "
            "(pip install 'dfine-bench[yolo]'; ultralytics also needs a torchvision matching your torch)"
        )
    from ultralytics import YOLO

    if isinstance(weights, WeightsRequest):  # ultralytics takes a name or a path, as given
        weights = weights.label
    if weights == "auto":  # no offline cache of ultralytics assets to consult: never download implicitly
        log.warning(
            "%s: weights=auto has no cached ultralytics weights to use; using random-init (seed %d)",
            spec.name,
            seed,
        )
        weights = RANDOM_INIT
    if weights == RANDOM_INIT:
        torch.manual_seed(seed)
        model = YOLO(f"{spec.name}.yaml").model
        info = WeightsInfo(source=RANDOM_INIT, seed=seed)
    else:
        if not trust_remote_code:
            raise CheckpointError(
                f"{spec.name}: ultralytics checkpoints ({weights}) are pickled models and loading one "
                "can run "
                "code; pass trust_remote_code=True if you trust the file"
            )
        path = Path(weights)
        model = YOLO(str(path) if path.exists() else weights).model
        info = WeightsInfo(
            source="local" if path.exists() else "hub",
            identifier=str(weights),
            sha256=sha256_files([path]) if path.is_file() else None,
        )
    model = model.float().eval().to(device)
    size = cast("tuple[int, int]", tuple(input_size)) if input_size else spec.input_size  # may be a list
    return YoloAdapter(dataclasses.replace(spec, input_size=size), model, info)


def _register() -> None:
    for generation, sizes in YOLO_MODELS.items():
        for size in sizes:
            register_model(
                ModelSpec(
                    name=f"{generation}{size}",
                    family="yolo",
                    input_size=(640, 640),
                    num_classes=80,
                    detections_per_image=MAX_DETECTIONS,
                    weights_formats=("random-init", "local", f"ultralytics:{generation}{size}.pt"),
                    description=f"{generation.upper()}-{size.upper()} via ultralytics "
                    "(optional extra 'yolo'); "
                    "timing includes NMS",
                    extra={"requires": "ultralytics", "nms_in_forward": generation != "yolov10"},
                ),
                _build,
            )


_register()
