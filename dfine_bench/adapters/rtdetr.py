"""RT-DETR and RT-DETRv2 (ResNet-vd R18/R34/R50/R101) through transformers.

Per-depth settings follow the official RT-DETR configs as transformers' conversion scripts
read them: R18/R34 use basic blocks with a half-width CCFM (``expansion 0.5``) and 3/4 decoder
layers; R50 is the default layout; R101 widens the encoder to 384. Same preprocessing
(640x640 resize to [0, 1]) and postprocessing (sigmoid top-300) as D-FINE; no FDR, no GO-LSD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from dfine_bench.adapters.base import DetectorAdapter, ModelSpec
from dfine_bench.adapters.hf_common import FamilyBuilder, HFDetectionAdapter, build_adapter, hf_config
from dfine_bench.adapters.registry import register_model

_BASIC = dict(layer_type="basic", hidden_sizes=[64, 128, 256, 512])

#: depth -> (backbone fields, top-level config fields)
RTDETR_DEPTHS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "r18": (
        {**_BASIC, "depths": [2, 2, 2, 2]},
        dict(encoder_in_channels=[128, 256, 512], hidden_expansion=0.5, decoder_layers=3),
    ),
    "r34": (
        {**_BASIC, "depths": [3, 4, 6, 3]},
        dict(encoder_in_channels=[128, 256, 512], hidden_expansion=0.5, decoder_layers=4),
    ),
    "r50": ({"depths": [3, 4, 6, 3]}, {}),
    "r101": (
        {"depths": [3, 4, 23, 3]},
        dict(encoder_hidden_dim=384, encoder_ffn_dim=2048, decoder_in_channels=[384, 384, 384]),
    ),
}

#: Paper-reported parameter counts (M) of the baselines (D-FINE paper, Table 1).
PAPER_PARAMS_M = {"r18": 20, "r34": 31, "r50": 42, "r101": 76}


class RTDetrAdapter(HFDetectionAdapter):
    """RT-DETR(v2): 640x640 resize to [0, 1]; sigmoid top-300 over query x class scores."""

    group_prefixes: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "backbone": ("model.backbone.",),
        "encoder": ("model.encoder_input_proj.", "model.encoder."),
    }


def rtdetr_config(depth: str, num_classes: int, v2: bool = False) -> Any:
    """The transformers config of RT-DETR(v2)-``depth`` with a ``num_classes`` head."""
    from transformers import RTDetrConfig, RTDetrResNetConfig, RTDetrV2Config

    backbone_fields, fields = RTDETR_DEPTHS[depth]
    backbone = hf_config(RTDetrResNetConfig, **backbone_fields, out_features=["stage2", "stage3", "stage4"])
    config_cls = RTDetrV2Config if v2 else RTDetrConfig
    return hf_config(config_cls, backbone_config=backbone, num_labels=num_classes, **fields)


def _num_classes_of(state: Mapping[str, torch.Tensor]) -> int | None:
    for key in ("model.decoder.class_embed.0.weight", "class_embed.0.weight"):
        if key in state:
            return int(state[key].shape[0])
    return None


def _family(depth: str, v2: bool) -> FamilyBuilder:
    def model_class() -> type:
        from transformers import RTDetrForObjectDetection, RTDetrV2ForObjectDetection

        return RTDetrV2ForObjectDetection if v2 else RTDetrForObjectDetection

    return FamilyBuilder(
        make_config=lambda num_classes: rtdetr_config(depth, num_classes, v2),
        model_class=model_class,
        adapter_cls=RTDetrAdapter,
        num_classes_of=_num_classes_of,
        reinit_convs=True,
    )


def _register() -> None:
    for depth in RTDETR_DEPTHS:
        for v2 in (False, True):
            family = _family(depth, v2)
            name = f"rtdetr{'v2' if v2 else ''}_{depth}"
            releases: dict[str, tuple[str, ...]] = {
                "coco": (f"PekingU/rtdetr{'_v2' if v2 else ''}_{depth}vd",)
            }
            if not v2 and depth != "r34":  # Objects365-pretrained, COCO fine-tuned releases
                releases["obj2coco"] = (f"PekingU/rtdetr_{depth}vd_coco_o365",)
            hub_ids = tuple(h for ids in releases.values() for h in ids)

            def factory(spec: ModelSpec, _family: FamilyBuilder = family, **options: Any) -> DetectorAdapter:
                return build_adapter(spec, _family, **options)

            register_model(
                ModelSpec(
                    name=name,
                    family="rtdetrv2" if v2 else "rtdetr",
                    input_size=(640, 640),
                    num_classes=80,
                    num_queries=300,
                    detections_per_image=300,
                    hub_ids=hub_ids,
                    releases=releases,
                    description=f"RT-DETR{'v2' if v2 else ''}-{depth.upper()} (ResNet-vd), transformers",
                    extra={"paper_params_m": PAPER_PARAMS_M[depth], "feat_strides": [8, 16, 32]},
                ),
                factory,
            )


_register()
