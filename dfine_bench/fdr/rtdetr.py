"""RT-DETR with an FDR box head (and optionally GO-LSD), as a transformers model.

Everything but the box head is transformers' RT-DETR: backbone, hybrid encoder, query selection,
denoising, decoder layers, class heads, matcher and VFL/L1/GIoU losses. The decoder's
``bbox_embed`` (per layer: an MLP predicting a 4-d delta in logit space) is replaced by
``decoder.fdr`` (``FdrBoxHead``: an initial box head and per-layer distribution heads), and the
loop runs ``fdr_decode``. The FDR settings and the GO-LSD switch live in the config
(``fdr_bins``, ``fdr_a``, ``fdr_c``, ``fdr_quality``, ``go_lsd``), so ``save_pretrained`` folders
rebuild the same model. Because the head's tensors are named ``model.decoder.fdr.*`` and the
baseline's ``model.decoder.bbox_embed.*``, loading one kind's checkpoint into the other fails
with those keys listed (``check_loading_info``), never silently.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import RTDetrConfig
from transformers.models.rt_detr.modeling_rt_detr import (
    RTDetrDecoder,
    RTDetrDecoderOutput,
    RTDetrForObjectDetection,
    RTDetrModel,
    RTDetrObjectDetectionOutput,
    RTDetrPreTrainedModel,
)

from dfine_bench.fdr.head import FdrBoxHead, FdrSettings, fdr_decode
from dfine_bench.fdr.loss import loss_inputs, rtdetr_criterion


def fdr_settings_of(config: Any) -> FdrSettings:
    """The FDR settings a config carries (``fdr_*`` fields; D-FINE's defaults where absent)."""
    default = FdrSettings()
    return FdrSettings(
        bins=int(getattr(config, "fdr_bins", default.bins)),
        a=float(getattr(config, "fdr_a", default.a)),
        c=float(getattr(config, "fdr_c", default.c)),
        quality=bool(getattr(config, "fdr_quality", default.quality)),
    )


class InitLikeTransformers:
    """Mixin: initialise as transformers initialises its own classes.

    For a class defined outside ``transformers.`` (``is_custom_code``), transformers skips the
    ``_init_weights`` of every module without parameters of its own, so the baseline's
    container-level inits (the encoder's and class heads' focal prior bias, D-FINE's zero inits)
    would silently not run and the variant would start from another point than its baseline.
    Every ``_init_weights`` here goes through ``transformers.initialization``, which is what the
    shortcut guards against not doing.
    """

    @classmethod
    def is_custom_code(cls) -> bool:
        return False


def with_fdr(config: Any, settings: FdrSettings, go_lsd: bool) -> Any:
    """Record FDR/GO-LSD on a transformers config (saved in config.json by ``save_pretrained``)."""
    config.fdr_bins, config.fdr_a, config.fdr_c = settings.bins, settings.a, settings.c
    config.fdr_quality, config.go_lsd = settings.quality, go_lsd
    return config


class FdrDecoder(InitLikeTransformers):
    """Mixin of both FDR decoders: a transformers decoder (the next base class) plus ``self.fdr``,
    the FDR box head, built after the decoder's own modules and initialised as D-FINE's."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)  # type: ignore[call-arg]  # the transformers decoder's
        self.fdr = FdrBoxHead(config.d_model, config.decoder_layers, fdr_settings_of(config))

    def _init_weights(self, module: nn.Module) -> None:
        # a sub-model is initialised by its own _init_weights: D-FINE's zero inits of the head here
        super()._init_weights(module)  # type: ignore[misc]  # the transformers decoder's
        from transformers import initialization as init

        # absent while the base's __init__ runs post_init
        head = self._modules.get("fdr")  # type: ignore[attr-defined]
        if isinstance(head, FdrBoxHead):
            head.init_module(module, init.constant_)


class RTDetrFdrDecoder(FdrDecoder, RTDetrDecoder):
    """RT-DETR's decoder layers and query-position head, boxes refined by FDR."""

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        reference_points: torch.Tensor | None = None,
        spatial_shapes: torch.Tensor | None = None,
        spatial_shapes_list: list[tuple[int, int]] | None = None,
        level_start_index: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> RTDetrDecoderOutput:
        assert reference_points is not None

        def run_layer(i: int, hidden: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
            # exactly what RTDetrDecoder does per layer: position embedding of the current boxes
            return self.layers[i](
                hidden,
                object_queries_position_embeddings=self.query_pos_head(boxes),
                encoder_hidden_states=encoder_hidden_states,
                reference_points=boxes.unsqueeze(2),
                spatial_shapes=spatial_shapes,
                spatial_shapes_list=spatial_shapes_list,
                level_start_index=level_start_index,
                encoder_attention_mask=encoder_attention_mask,
            )

        out = fdr_decode(
            self.fdr, inputs_embeds, reference_points.sigmoid(), run_layer, self.class_embed, self.training
        )
        self.last_decoded = out  # the pre-box and distributions, read by the detection head's loss
        return RTDetrDecoderOutput(
            last_hidden_state=out.hidden_states[:, -1],
            intermediate_hidden_states=out.hidden_states,
            intermediate_logits=out.logits,
            intermediate_reference_points=out.boxes,
            intermediate_predicted_corners=out.corners,
            initial_reference_points=out.initial.unsqueeze(1).expand(-1, out.boxes.shape[1], -1, -1),
        )


class RTDetrFdrModel(InitLikeTransformers, RTDetrModel):
    def __init__(self, config: RTDetrConfig) -> None:
        super().__init__(config)
        self.decoder = RTDetrFdrDecoder(config)
        self.post_init()


class RTDetrFdrForObjectDetection(InitLikeTransformers, RTDetrForObjectDetection):
    """``RTDetrForObjectDetection`` with the FDR box head; computes its loss from ``labels``
    (RT-DETR's terms, plus FGL and DDF when ``config.go_lsd``)."""

    def __init__(self, config: RTDetrConfig) -> None:
        RTDetrPreTrainedModel.__init__(self, config)
        self.model = RTDetrFdrModel(config)
        self.model.decoder.class_embed = nn.ModuleList(
            [nn.Linear(config.d_model, config.num_labels or 0) for _ in range(config.decoder_layers)]
        )
        self.model.decoder.bbox_embed = None  # the FDR head (decoder.fdr) predicts the boxes
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        labels: list[dict[str, torch.Tensor]] | None = None,
        **kwargs: Any,
    ) -> RTDetrObjectDetectionOutput:
        outputs = self.model(pixel_values, pixel_mask=pixel_mask, labels=labels)
        logits = outputs.intermediate_logits[:, -1]
        pred_boxes = outputs.intermediate_reference_points[:, -1]
        dn_meta = outputs.denoising_meta_values if self.training else None
        if dn_meta is not None:  # inference-facing outputs never include denoising queries
            _, logits = torch.split(logits, dn_meta["dn_num_split"], dim=1)
            _, pred_boxes = torch.split(pred_boxes, dn_meta["dn_num_split"], dim=1)
        decoded = self.model.decoder.__dict__.pop("last_decoded")  # never kept beyond this call
        loss = loss_dict = None
        if labels is not None:
            criterion = rtdetr_criterion(self.config, fdr_settings_of(self.config), bool(self.config.go_lsd))
            criterion.to(pixel_values.device)
            inputs = loss_inputs(
                outputs.intermediate_logits,
                outputs.intermediate_reference_points,
                outputs.intermediate_predicted_corners,
                decoded.initial,
                decoded.pre_logits,
                decoded.pre_boxes,
                enc=[(outputs.enc_topk_logits, outputs.enc_topk_bboxes)],
                dn_meta=dn_meta,
            )
            loss_dict = criterion(inputs, labels)
            loss = sum(loss_dict.values())
        return RTDetrObjectDetectionOutput(
            loss=loss,
            loss_dict=loss_dict,
            logits=logits,
            pred_boxes=pred_boxes,
            last_hidden_state=outputs.last_hidden_state,
            intermediate_hidden_states=outputs.intermediate_hidden_states,
            intermediate_logits=outputs.intermediate_logits,
            intermediate_reference_points=outputs.intermediate_reference_points,
            intermediate_predicted_corners=outputs.intermediate_predicted_corners,
            initial_reference_points=outputs.initial_reference_points,
            enc_topk_logits=outputs.enc_topk_logits,
            enc_topk_bboxes=outputs.enc_topk_bboxes,
            denoising_meta_values=outputs.denoising_meta_values,
        )
