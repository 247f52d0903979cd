"""Labels for what a record measured: device, setup, weights, data, and what was a stand-in.

Every table, plot and report names its numbers with these helpers, so the same record is
described the same way everywhere, a device is only ever named by what really ran
(``setup.device_name``), and stand-in numbers (random-init weights, generated data) are
always called so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dfine_bench.records.schema import DatasetInfo, ModelInfo, ResultRecord, Setup

#: The paper's measurement protocol, in words, for the reports' reference line.
PAPER_PROTOCOL_TEXT = (
    "COCO val2017 (5000 images), 640x640 input, batch size 1, NVIDIA T4 with TensorRT FP16, "
    "the deploy engine (model + top-300 postprocessor)"
)

STAND_IN_WEIGHTS = "random-init weights"
STAND_IN_DATA = "generated data"
#: The project's own trained fixture (``dfine_fixture``): real weights, but trained on generated data.
FIXTURE_WEIGHTS = "fixture weights, trained on generated data"


def device_label(setup: Setup) -> str:
    """What ran the measurement: ``device_name`` (e.g. "AMD EPYC", "Tesla T4"), else the device string."""
    return setup.device_name or setup.device or "unknown device"


def setup_label(setup: Setup) -> str:
    """``"<device name> · <backend> · <dtype>"``: the three things numbers must never be mixed across."""
    return f"{device_label(setup)} · {setup.backend} · {setup.dtype}"


def input_label(size: Iterable[int] | None) -> str | None:
    return "x".join(str(int(s)) for s in size) if size else None


def weights_label(model: ModelInfo) -> str:
    """How the weights were obtained, short: ``random-init (seed 0)``, ``hub: org/name``, ..."""
    if model.random_init:
        label = model.extra.get("weights_label")
        if isinstance(label, str) and label:
            return label
        return "random-init" + (f" (seed {model.weights_seed})" if model.weights_seed is not None else "")
    source = model.weights_source or "unknown"
    if source == "fixture":
        return FIXTURE_WEIGHTS
    if model.weights_id:
        return f"{source}: {model.weights_id}"
    return f"{source} (sha256 {model.weights_sha256[:12]})" if model.weights_sha256 else source


def weights_key(model: ModelInfo) -> str:
    """Identity of the weights: two records share a table row only if this is equal."""
    if model.random_init:
        return f"random-init:{model.weights_seed}"
    return model.weights_sha256 or f"{model.weights_source}:{model.weights_id}"


def dataset_label(dataset: DatasetInfo | None) -> str:
    if dataset is None:
        return "no dataset"
    parts = [dataset.name]
    n = dataset.subset or dataset.num_images
    if n:
        parts.append(f"{n} images")
    if dataset.generated:
        parts.append("stand-in" if "generated" in dataset.name.lower() else "generated stand-in")
    return ", ".join(parts)


def stand_in_reasons(record: ResultRecord) -> list[str]:
    """Why this record's numbers are stand-ins ([] when they are not)."""
    out = []
    if record.model.random_init:
        out.append(STAND_IN_WEIGHTS)
    if record.model.weights_source == "fixture":
        out.append(FIXTURE_WEIGHTS)
    if record.dataset is not None and record.dataset.generated:
        out.append(STAND_IN_DATA)
    return out


def stand_in_text(reasons: Iterable[str]) -> str:
    """``"stand-in: random-init weights / generated data"``, or "" when there is nothing to say."""
    ordered = [r for r in (STAND_IN_WEIGHTS, FIXTURE_WEIGHTS, STAND_IN_DATA) if r in set(reasons)]
    return "stand-in: " + " / ".join(ordered) if ordered else ""


def normalize_name(value: str) -> str:
    """Case- and punctuation-blind form for matching names: "D-FINE", "d_fine" and "dfine" agree."""
    return re.sub(r"[^a-z0-9]+", "", value.lower())


def matches_device(setup: Setup, wanted: str) -> bool:
    """Whether ``wanted`` ("cpu", "cuda", "cuda:0", "T4", "EPYC") names this setup's device."""
    w = wanted.strip().lower()
    device = (setup.device or "").lower()
    if w in (device, device.split(":", 1)[0]):
        return True
    return w in (setup.device_name or "").lower()
