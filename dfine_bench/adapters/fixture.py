"""``dfine_fixture``: a D-FINE that this project trained itself, so accuracy is real offline.

The D-FINE-N architecture (HGNetv2 B0, FDR with 32 bins, GO-LSD during training, COCO-80 head)
trained at 320x320 on the generated dataset (training split: seed 1000) and shipped inside the
package as an fp16 ``save_pretrained`` folder with its model card
(``dfine_bench/fixtures/dfine_fixture/``). Its AP on held-out generated data (other seeds) is a
*fixture* number: it shows that preprocessing, box formats and label maps are right end to end,
and it gives the regression gate something to lose. It is never a COCO number.

Weights: ``auto`` or ``fixture`` read the packaged folder (recorded as source ``fixture``); every
other source (``random-init``, a local folder, an official-layout ``.pth``, a hub id from the
Hugging Face cache) goes through the ordinary D-FINE loading path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dfine_bench.adapters.base import DetectorAdapter, ModelSpec
from dfine_bench.adapters.dfine import OFFICIAL_PARAMS, dfine_family
from dfine_bench.adapters.hf_common import build_adapter
from dfine_bench.adapters.registry import register_model
from dfine_bench.adapters.spec import WeightsRequest
from dfine_bench.errors import CheckpointError

NAME = "dfine_fixture"
#: Where the trained weights ship: inside the package, so an installed dfine-bench has them.
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / NAME
#: The hub id a user would publish it under; tests serve it from a hub-layout cache on disk.
HUB_ID = "dfine-bench/dfine_fixture"
FIXTURE_SOURCE = "fixture"
FIXTURE_LABEL = "fixture weights, trained on generated data"

SPEC = ModelSpec(
    name=NAME,
    family="dfine",
    input_size=(320, 320),
    num_classes=80,
    label_set="coco80",
    fdr=True,
    fdr_bins=32,
    go_lsd=True,
    num_queries=300,
    detections_per_image=300,
    hub_ids=(HUB_ID,),
    weights_formats=(FIXTURE_SOURCE, "random-init", "hub", "local", "official"),
    description="D-FINE-N architecture trained here on generated data (320x320): the project's fixture",
    extra={"official_params": OFFICIAL_PARAMS["n"], "weights_label": FIXTURE_LABEL, "feat_strides": [16, 32]},
)


def fixture_weights_dir() -> Path:
    """The packaged weights folder; a clear error when a checkout or wheel lacks it."""
    if not (FIXTURE_DIR / "model.safetensors").is_file() or not (FIXTURE_DIR / "config.json").is_file():
        raise CheckpointError(
            f"{NAME}: the fixture weights are missing from {FIXTURE_DIR} (model.safetensors + config.json); "
            "reinstall dfine-bench or retrain them (see the model card's command)"
        )
    return FIXTURE_DIR


def _factory(spec: ModelSpec, *, weights: str | WeightsRequest = "auto", **options: Any) -> DetectorAdapter:
    if _fixture_asked(weights):
        adapter = build_adapter(spec, dfine_family("n"), weights=str(fixture_weights_dir()), **options)
        adapter.weights = dataclasses.replace(adapter.weights, source=FIXTURE_SOURCE, identifier=NAME)
        return adapter
    return build_adapter(spec, dfine_family("n"), weights=weights, **options)


def _fixture_asked(weights: str | WeightsRequest) -> bool:
    """``auto`` or ``fixture``: the packaged trained weights (``auto`` has no cache to look in first)."""
    if isinstance(weights, WeightsRequest):
        return weights.kind == "auto"
    return weights.strip().lower() in ("auto", FIXTURE_SOURCE)


register_model(SPEC, _factory)
