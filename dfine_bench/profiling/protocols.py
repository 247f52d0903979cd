"""Named measurement protocols and how a measurement deviates from the paper's.

The D-FINE paper times every model with TensorRT FP16 at batch size 1 and 640x640 input,
model only (no NMS, no pre/postprocessing), on an NVIDIA T4, feeding COCO val2017 images.
``paper_t4`` is that protocol as a preset; it runs on any NVIDIA GPU, and
``deviations_from_paper`` lists, in plain sentences, every way a measurement differs from it
(starting with the device), so that no number is ever read as a T4 number unless a T4 ran it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PAPER_PROTOCOL = "paper_t4"


@dataclass(frozen=True)
class Protocol:
    """A fixed set of measurement settings. ``reference_device`` is a substring of the GPU name."""

    name: str
    description: str
    backend: str
    dtype: str
    batch_size: int
    input_size: tuple[int, int]
    timed: str
    input_kind: str
    reference_device: str | None
    nms: bool = False


PAPER_T4 = Protocol(
    name=PAPER_PROTOCOL,
    description="TensorRT FP16, batch size 1, 640x640 input, model only (no NMS), NVIDIA T4, COCO images",
    backend="tensorrt",
    dtype="fp16",
    batch_size=1,
    input_size=(640, 640),
    timed="model",
    input_kind="dataset",
    reference_device="T4",
)

PROTOCOLS: dict[str, Protocol] = {PAPER_T4.name: PAPER_T4}


def device_matches(device_name: str | None, reference: str | None) -> bool:
    """Whether ``device_name`` (e.g. "Tesla T4") names the ``reference`` device ("T4") as a whole word."""
    if not device_name or not reference:
        return False
    # a whole word: "Tesla T4" and "NVIDIA T4" match, "T40" or "RTX 4090" do not
    pattern = rf"(?<![A-Za-z0-9]){re.escape(reference)}(?![A-Za-z0-9])"
    return re.search(pattern, device_name, flags=re.IGNORECASE) is not None


def on_reference_device(device_name: str | None, protocol: Protocol = PAPER_T4) -> bool:
    """Whether ``device_name`` (e.g. "Tesla T4") is the protocol's reference device."""
    return device_matches(device_name, protocol.reference_device)


def _size(input_size: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in input_size)


def deviations_from_paper(
    device_name: str | None,
    backend: str,
    dtype: str,
    batch_size: int,
    input_size: Sequence[int],
    timed: str,
    input_kind: str,
) -> list[str]:
    """Plain sentences for each way this setup differs from the paper's protocol; [] if none."""
    p = PAPER_T4
    out: list[str] = []
    if not on_reference_device(device_name, p):
        out.append(f"ran on {device_name or 'an unknown device'}, not an NVIDIA {p.reference_device}")
    if (backend, dtype) != (p.backend, p.dtype):
        out.append(
            f"{_backend_words(backend)} {dtype.upper() if dtype != 'fp32' else 'fp32'}, not TensorRT FP16"
        )
    if int(batch_size) != p.batch_size:
        out.append(f"batch size {int(batch_size)}, not {p.batch_size}")
    if tuple(int(s) for s in input_size) != p.input_size:
        out.append(f"input {_size(input_size)}, not {_size(p.input_size)}")
    if timed != p.timed:
        out.append(f"timed {timed}, not the model alone")
    if input_kind != p.input_kind:
        words = {"fixed": "fixed random input", "generated": "generated images"}
        out.append(f"{words.get(input_kind, input_kind + ' input')}, not COCO images")
    return out


def _backend_words(backend: str) -> str:
    return {
        "eager": "PyTorch eager",
        "compile": "torch.compile",
        "onnxruntime": "onnxruntime",
        "tensorrt": "TensorRT",
    }.get(backend, backend)


#: The paper's accuracy protocol: COCO val2017, all of its images, 640x640 input.
PAPER_COCO_IMAGES = 5000


def accuracy_deviations(
    dataset_name: str,
    num_images: int | None,
    generated: bool,
    input_size: Sequence[int] | None,
    batch_size: int | None = 1,
    *,
    coco_images: int = PAPER_COCO_IMAGES,
    reference_size: Sequence[int] = PAPER_T4.input_size,
) -> list[str]:
    """Plain sentences for each way an evaluation differs from the paper's (COCO val2017, 640x640).

    ``coco_images`` / ``reference_size``: the reference, when a claims file states its own;
    ``batch_size=None`` leaves the batch size out (it does not change AP, only how it ran).
    """
    out: list[str] = []
    if generated:
        out.append("generated stand-in dataset, not COCO val2017")
    elif "val2017" not in dataset_name or num_images != coco_images:
        out.append(f"{dataset_name} with {num_images} images, not the {coco_images} of COCO val2017")
    if input_size is not None and tuple(int(s) for s in input_size) != tuple(reference_size):
        out.append(f"input {_size(input_size)}, not {_size(reference_size)}")
    if batch_size is not None and int(batch_size) != PAPER_T4.batch_size:
        out.append(f"batch size {int(batch_size)}, not {PAPER_T4.batch_size}")
    return out


def complexity_deviations(input_size: Sequence[int]) -> list[str]:
    """The one way a params/GFLOPs count can differ from the paper's: the input size."""
    if tuple(int(s) for s in input_size) != PAPER_T4.input_size:
        return [f"counted at {_size(input_size)}, not {_size(PAPER_T4.input_size)}"]
    return []
