"""DETR-family baselines through transformers: DETR-R50, Deformable-DETR, Conditional-DETR,
DAB-DETR (all ResNet-50).

Built with transformers' native ResNet backbone (``use_timm_backbone=False``): timm needs
torchvision, which is not importable beside this project's torch build. Hub checkpoints whose
config asks for a timm backbone are refused with the fix (DETR publishes a ``no_timm`` revision).

Heads have 91 outputs indexed by COCO category id (``label_set="coco91"``).
Preprocessing: shortest edge 800 / longest 1333, ImageNet mean/std, batch padding + pixel mask;
``input_size`` reads as (shortest, longest). Postprocessing, as each model's official code:

* DETR: softmax over classes + "no object", best class per query: 100 detections (one per query);
* Deformable-DETR, Conditional-DETR: sigmoid over query x class, top 100;
* DAB-DETR: sigmoid over query x class, top 300 (its ``num_select``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from dfine_bench.adapters.base import Detections, DetectorAdapter, ModelSpec, Preprocessor, RawOutputs
from dfine_bench.adapters.hf_common import (
    DetrPreprocessor,
    FamilyBuilder,
    HFDetectionAdapter,
    build_adapter,
    hf_config,
    sigmoid_topk_postprocess,
    softmax_postprocess,
)
from dfine_bench.adapters.registry import register_model
from dfine_bench.errors import CheckpointError

COCO91 = 91


class DetrFamilyAdapter(HFDetectionAdapter):
    """DETR family: DETR resize/normalise/pad preprocessing, family-specific postprocessing."""

    group_prefixes: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "backbone": ("model.backbone.",),
        "encoder": ("model.input_projection.", "model.input_proj", "model.encoder."),
    }
    softmax = False

    def preprocessor(self) -> Preprocessor:
        shortest, longest = self.spec.input_size
        return DetrPreprocessor(shortest=shortest, longest=longest)

    def postprocess(self, outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        if self.softmax:
            return softmax_postprocess(outputs, original_sizes, self.label_to_category)
        top_k = self.spec.detections_per_image or 100
        return sigmoid_topk_postprocess(outputs, original_sizes, top_k, self.label_to_category)


class DetrAdapter(DetrFamilyAdapter):
    softmax = True


def _native_resnet50(out_features: list[str]) -> Any:
    from transformers import ResNetConfig

    return hf_config(
        ResNetConfig,
        depths=[3, 4, 6, 3],
        hidden_sizes=[256, 512, 1024, 2048],
        layer_type="bottleneck",
        out_features=out_features,
    )


def _check_no_timm(config: Mapping[str, Any], where: str) -> None:
    backbone = config.get("backbone_config") or {}
    uses_timm = config.get("use_timm_backbone") is True or (
        isinstance(backbone, Mapping) and backbone.get("model_type") == "timm_backbone"
    )
    if uses_timm:
        raise CheckpointError(
            f"{where}: this checkpoint uses a timm ResNet backbone (use_timm_backbone); dfine-bench builds "
            "DETR-family models with transformers' native ResNet, whose tensors are named differently, "
            "and timm needs torchvision (not importable here). Use a native-backbone revision "
            "(e.g. revision='no_timm' "
            "for facebook/detr-resnet-50) or re-save the model with use_timm_backbone=False"
        )


def _num_classes_of(state: Mapping[str, torch.Tensor]) -> int | None:
    for key in ("class_embed.weight", "class_embed.0.weight", "class_labels_classifier.weight"):
        if key in state:
            rows = int(state[key].shape[0])
            return rows - 1 if key == "class_labels_classifier.weight" else rows
    return None


def detr_family_config(kind: str, num_classes: int) -> Any:
    """The transformers config of a DETR-family model with a native ResNet-50 backbone."""
    import transformers as tf

    # Deformable-DETR reads three backbone levels (strides 8/16/32); the others only the last
    levels = ["stage2", "stage3", "stage4"] if kind == "deformable_detr" else ["stage4"]
    config_cls = {
        "detr": tf.DetrConfig,
        "deformable_detr": tf.DeformableDetrConfig,
        "conditional_detr": tf.ConditionalDetrConfig,
        "dab_detr": tf.DabDetrConfig,
    }[kind]
    return config_cls(backbone_config=_native_resnet50(levels), num_labels=num_classes)


def _model_class(kind: str):
    def model_class() -> type:
        import transformers as tf

        return {
            "detr": tf.DetrForObjectDetection,
            "deformable_detr": tf.DeformableDetrForObjectDetection,
            "conditional_detr": tf.ConditionalDetrForObjectDetection,
            "dab_detr": tf.DabDetrForObjectDetection,
        }[kind]

    return model_class


#: name -> (kind, adapter class, hub ids, num_queries, detections per image, description)
_MODELS: dict[str, tuple[str, type[DetrFamilyAdapter], tuple[str, ...], int, int, str]] = {
    "detr_r50": ("detr", DetrAdapter, ("facebook/detr-resnet-50",), 100, 100, "DETR ResNet-50"),
    "deformable_detr": (
        "deformable_detr",
        DetrFamilyAdapter,
        ("SenseTime/deformable-detr",),
        300,
        100,
        "Deformable-DETR ResNet-50 (single stage, no box refinement)",
    ),
    "conditional_detr": (
        "conditional_detr",
        DetrFamilyAdapter,
        ("microsoft/conditional-detr-resnet-50",),
        300,
        100,
        "Conditional-DETR ResNet-50",
    ),
    "dab_detr": (
        "dab_detr",
        DetrFamilyAdapter,
        ("IDEA-Research/dab-detr-resnet-50",),
        300,
        300,
        "DAB-DETR ResNet-50",
    ),
}


def _register() -> None:
    for name, (kind, adapter_cls, hub_ids, queries, keep, description) in _MODELS.items():
        family = FamilyBuilder(
            make_config=functools.partial(detr_family_config, kind),
            model_class=_model_class(kind),
            adapter_cls=adapter_cls,
            check_config=_check_no_timm,
            num_classes_of=_num_classes_of,
        )

        def factory(spec: ModelSpec, _family: FamilyBuilder = family, **options: Any) -> DetectorAdapter:
            return build_adapter(spec, _family, **options)

        register_model(
            ModelSpec(
                name=name,
                family=kind,
                input_size=(800, 1333),
                num_classes=COCO91,
                label_set="coco91",
                num_queries=queries,
                detections_per_image=keep,
                hub_ids=hub_ids,
                releases={"coco": hub_ids},
                description=f"{description}; input_size = (shortest edge, longest edge)",
            ),
            factory,
        )


_register()
