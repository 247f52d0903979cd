"""Deformable-DETR with iterative box refinement, its box head replaced by FDR, as a transformers model.

The D-FINE paper's Table 2 baseline is Deformable-DETR *with box refinement* (single stage):
transformers' ``DeformableDetrForObjectDetection`` with ``with_box_refine=True``. Everything
but the box head is that model: backbone, encoder, learned queries and their 2-d reference
points, decoder layers, the (tied, as transformers ties them) class heads, matcher and the
focal + L1 + GIoU losses. The per-layer ``bbox_embed`` MLPs (delta in logit space, applied in the
decoder and again at the top) are replaced by ``model.decoder.fdr``; the first layer's initial
box refines the 2-d reference point's centre, as the baseline's first layer does.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from transformers import DeformableDetrConfig
from transformers.models.deformable_detr.modeling_deformable_detr import (
    DeformableDetrDecoder,
    DeformableDetrDecoderOutput,
    DeformableDetrModel,
    DeformableDetrObjectDetectionOutput,
    DeformableDetrPreTrainedModel,
)

from dfine_bench.fdr.head import fdr_decode
from dfine_bench.fdr.loss import deformable_criterion, loss_inputs, weighted_total
from dfine_bench.fdr.rtdetr import FdrDecoder, InitLikeTransformers, fdr_settings_of


class DeformableDetrFdrDecoder(FdrDecoder, DeformableDetrDecoder):
    """Deformable-DETR's decoder layers (single-stage), boxes refined by FDR."""

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        object_queries_position_embeddings: torch.Tensor | None = None,
        reference_points: torch.Tensor | None = None,
        spatial_shapes: torch.Tensor | None = None,
        spatial_shapes_list: list[tuple[int, int]] | None = None,
        level_start_index: torch.Tensor | None = None,
        valid_ratios: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> DeformableDetrDecoderOutput:
        assert reference_points is not None and valid_ratios is not None

        def run_layer(i: int, hidden: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
            # what DeformableDetrDecoder does per layer: scale the reference by the valid ratios
            ratios = torch.cat([valid_ratios, valid_ratios], -1) if boxes.shape[-1] == 4 else valid_ratios
            return self.layers[i](
                hidden,
                object_queries_position_embeddings,
                boxes[:, :, None] * ratios[:, None],
                spatial_shapes,
                spatial_shapes_list,
                level_start_index,
                encoder_hidden_states,
                encoder_attention_mask,
            )

        out = fdr_decode(self.fdr, inputs_embeds, reference_points, run_layer, None, self.training)
        self.last_decoded = out
        return DeformableDetrDecoderOutput(
            last_hidden_state=out.hidden_states[:, -1],
            intermediate_hidden_states=out.hidden_states,
            intermediate_reference_points=out.boxes,
        )


class DeformableDetrFdrModel(InitLikeTransformers, DeformableDetrModel):
    def __init__(self, config: DeformableDetrConfig) -> None:
        super().__init__(config)
        self.decoder = DeformableDetrFdrDecoder(config)
        self.post_init()


class DeformableDetrFdrForObjectDetection(InitLikeTransformers, DeformableDetrPreTrainedModel):
    """Single-stage Deformable-DETR with FDR boxes; loss from ``labels`` (focal + L1 + GIoU, plus
    FGL and DDF when ``config.go_lsd``)."""

    _no_split_modules = None  # type: ignore[assignment]
    # one class head shared by all layers, as transformers' baseline ties them
    _tied_weights_keys = {r"class_embed.(?![0])\d+": "class_embed.0"}  # noqa: RUF012 (transformers' form)

    def __init__(self, config: DeformableDetrConfig) -> None:
        super().__init__(config)
        if config.two_stage:
            raise ValueError("the FDR variant of Deformable-DETR is single-stage (two_stage=False)")
        self.model = DeformableDetrFdrModel(config)
        head = nn.Linear(config.d_model, config.num_labels or 0)
        self.class_embed = nn.ModuleList([head] * config.decoder_layers)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        labels: list[dict[str, torch.Tensor]] | None = None,
        **kwargs: Any,
    ) -> DeformableDetrObjectDetectionOutput:
        outputs = self.model(pixel_values, pixel_mask=pixel_mask)
        decoded = self.model.decoder.__dict__.pop("last_decoded")  # never kept beyond this call
        head = self.model.decoder.fdr
        last = head.num_layers - 1
        logits_all = []
        for i in range(head.num_layers):
            logits = self.class_embed[i](decoded.hidden_states[:, i])
            if head.lqe_layers is not None and (self.training or i == last):
                logits = head.lqe_layers[i](logits, decoded.corners[:, i])
            logits_all.append(logits)
        stacked = torch.stack(logits_all, dim=1)
        logits, pred_boxes = stacked[:, -1], decoded.boxes[:, -1]
        loss = loss_dict = None
        if labels is not None:
            pre_logits = self.class_embed[0](decoded.hidden_states[:, 0])
            criterion = deformable_criterion(
                self.config, fdr_settings_of(self.config), bool(self.config.go_lsd)
            )
            criterion.to(pixel_values.device)
            inputs = loss_inputs(
                stacked, decoded.boxes, decoded.corners, decoded.initial, pre_logits, decoded.pre_boxes
            )
            loss_dict = criterion(inputs, labels)
            loss = weighted_total(loss_dict, cast(dict[str, float], criterion.weight_dict))
        return DeformableDetrObjectDetectionOutput(
            loss=loss,
            loss_dict=loss_dict,
            logits=logits,
            pred_boxes=pred_boxes,
            last_hidden_state=outputs.last_hidden_state,
            intermediate_hidden_states=outputs.intermediate_hidden_states,
            intermediate_reference_points=outputs.intermediate_reference_points,
            init_reference_points=outputs.init_reference_points,
        )
