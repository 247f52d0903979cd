"""Named measurement protocols and how a measurement deviates from the paper's.

The D-FINE paper times every model with TensorRT FP16 at batch size 1 and 640x640 input, on an
NVIDIA T4, feeding COCO val2017 images. What it times is the deploy engine: the official export
(``tools/deployment/export_onnx.py``) puts the postprocessor (top-300 over sigmoid scores, no
NMS) into the ONNX graph the engine is built from, so the latency is ``model+postprocess`` with
the input already on the GPU and no preprocessing.
``paper_t4`` is that protocol as a preset (``records.protocols.PAPER_T4``, its one definition);
it runs on any NVIDIA GPU, and
``deviations_from_paper`` lists every way a measurement differs from it (starting with the
device) as ``Deviation(code, expected, actual)`` data with a sentence in ``.text``, so that no
number is ever read as a T4 number unless a T4 ran it.

COCO val2017 is recognised by the sha256 of its annotation file (``COCO_VAL2017_SHA256``), never
by a file name or an image count: a file with another hash is "not COCO val2017" whatever it is
called and however many images it lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dfine_bench.backends import get_backend
from dfine_bench.errors import DfineBenchError
from dfine_bench.records import deviations as dev
from dfine_bench.records.deviations import Deviation
from dfine_bench.records.protocols import PAPER_PROTOCOL, PAPER_T4, PROTOCOLS, Protocol

#: what ``timed=model+postprocess`` covers when the backend could not run the deploy graph
POSTPROCESS_IN_PYTHON = "model+postprocess, the postprocessor in Python after the backend"


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
    *,
    graph: str | None = None,
) -> list[Deviation]:
    """Each way this setup differs from the paper's protocol (codes in ``records.deviations``); []
    if none. ``graph`` is what the backend ran: ``model`` under ``timed=model+postprocess`` means
    the postprocessor ran in Python after it, not inside the engine as the paper's."""
    p = PAPER_T4
    out: list[Deviation] = []
    if not on_reference_device(device_name, p):
        out.append(Deviation(dev.DEVICE, p.reference_device or "", device_name or "an unknown device"))
    if (backend, dtype) != (p.backend, p.dtype):
        out.append(Deviation(dev.BACKEND, _backend_text(p.backend, p.dtype), _backend_text(backend, dtype)))
    if int(batch_size) != p.batch_size:
        out.append(Deviation(dev.BATCH_SIZE, str(p.batch_size), str(int(batch_size))))
    if tuple(int(s) for s in input_size) != p.input_size:
        out.append(Deviation(dev.INPUT_SIZE, _size(p.input_size), _size(input_size)))
    if timed != p.timed:
        out.append(Deviation(dev.TIMED, p.timed, timed))
    elif graph == "model":
        out.append(Deviation(dev.TIMED, p.timed, POSTPROCESS_IN_PYTHON))
    if input_kind != p.input_kind:
        out.append(Deviation(dev.INPUT_KIND, p.input_kind, input_kind))
    return out


def _backend_text(backend: str, dtype: str) -> str:
    """``PyTorch eager fp32``, ``TensorRT FP16``: half precisions upper-cased as the paper writes them."""
    return f"{_backend_words(backend)} {dtype.upper() if dtype != 'fp32' else 'fp32'}"


def _backend_words(backend: str) -> str:
    """The backend's ``display_name`` (its name when it has none or is not installed here)."""

    try:
        return get_backend(backend).display_name or backend
    except DfineBenchError:
        return backend


#: The paper's accuracy protocol: COCO val2017, all of its images, 640x640 input.
PAPER_COCO_IMAGES = 5000
#: sha256 of the official ``annotations/instances_val2017.json`` (19,987,840 bytes) inside
#: ``annotations_trainval2017.zip`` (sha256 113a836d..., md5 f4bbac64... as published for that
#: archive). Pinned by several independent projects that verify the extracted member; the COCO
#: site itself publishes no per-file hash.
COCO_VAL2017_SHA256 = "e8c7f7908f1d7278341fae127d0da654f102f11bd7b21d8aeefa635b8c810b6f"


def is_coco_val2017(annotations_sha256: str | None) -> bool:
    """Whether an annotation file is the official COCO val2017 one, by its sha256 alone."""
    return (annotations_sha256 or "").lower() == COCO_VAL2017_SHA256


def accuracy_deviations(
    dataset_name: str,
    num_images: int | None,
    generated: bool,
    input_size: Sequence[int] | None,
    batch_size: int | None = 1,
    *,
    coco_images: int = PAPER_COCO_IMAGES,
    reference_size: Sequence[int] = PAPER_T4.input_size,
    annotations_sha256: str | None = None,
    check_annotations: bool = False,
) -> list[Deviation]:
    """Each way an evaluation differs from the paper's (COCO val2017, 640x640); [] if none.

    With ``check_annotations`` (what evaluations and claims do), annotations whose sha256 is not
    ``COCO_VAL2017_SHA256`` are a deviation (code ``annotations``, the hash named; ``unknown``
    when none was recorded), whatever the file or dataset is called. ``coco_images`` /
    ``reference_size``: the reference, when a claims file states its own; ``batch_size=None``
    leaves the batch size out (it does not change AP, only how it ran).
    """
    out: list[Deviation] = []
    if generated:
        out.append(Deviation(dev.DATASET_GENERATED, "COCO val2017", "generated"))
    elif check_annotations and not is_coco_val2017(annotations_sha256):
        out.append(Deviation(dev.ANNOTATIONS, COCO_VAL2017_SHA256, annotations_sha256 or "unknown"))
    elif num_images != coco_images or (not check_annotations and "val2017" not in dataset_name):
        out.append(Deviation(dev.NUM_IMAGES, str(coco_images), f"{dataset_name} with {num_images} images"))
    if input_size is not None and tuple(int(s) for s in input_size) != tuple(reference_size):
        out.append(Deviation(dev.INPUT_SIZE, _size(reference_size), _size(input_size)))
    if batch_size is not None and int(batch_size) != PAPER_T4.batch_size:
        out.append(Deviation(dev.BATCH_SIZE, str(PAPER_T4.batch_size), str(int(batch_size))))
    return out


def complexity_deviations(input_size: Sequence[int]) -> list[Deviation]:
    """The one way a params/GFLOPs count can differ from the paper's: the input size."""
    if tuple(int(s) for s in input_size) != PAPER_T4.input_size:
        return [Deviation(dev.COUNTED_AT, _size(PAPER_T4.input_size), _size(input_size))]
    return []


__all__ = [
    "COCO_VAL2017_SHA256",
    "PAPER_COCO_IMAGES",
    "PAPER_PROTOCOL",
    "PAPER_T4",
    "POSTPROCESS_IN_PYTHON",
    "PROTOCOLS",
    "Protocol",
    "accuracy_deviations",
    "complexity_deviations",
    "deviations_from_paper",
    "device_matches",
    "is_coco_val2017",
    "on_reference_device",
]
