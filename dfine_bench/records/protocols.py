"""The named measurement protocols, as data: the one definition of ``paper_t4``.

A record's ``Setup.protocol`` names one of these. The D-FINE paper times every model with
TensorRT FP16 at batch size 1 and 640x640 input, on an NVIDIA T4, feeding COCO val2017 images,
and what it times is the deploy engine (the model with its top-300 postprocessor, no NMS):
``PAPER_T4``. Everything else reads it from here: the settings apply its fixed values
(``config/settings.py``), the deviations are measured against it (``profiling/protocols.py``),
``suites/protocol/paper_t4.yaml`` is checked equal to it by a test, and so is the README's prose.
It sits with the records (no torch, no config) so every layer can read it.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    name="paper_t4",
    description=(
        "TensorRT FP16, batch size 1, 640x640 input, the deploy engine (model + top-300 postprocessor, "
        "no NMS), NVIDIA T4, COCO images"
    ),
    backend="tensorrt",
    dtype="fp16",
    batch_size=1,
    input_size=(640, 640),
    timed="model+postprocess",
    input_kind="dataset",
    reference_device="T4",
)

#: The paper's protocol name (``protocol=paper_t4``).
PAPER_PROTOCOL = PAPER_T4.name

PROTOCOLS: dict[str, Protocol] = {PAPER_T4.name: PAPER_T4}

__all__ = ["PAPER_PROTOCOL", "PAPER_T4", "PROTOCOLS", "Protocol"]
