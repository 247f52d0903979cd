"""Convert official D-FINE checkpoints (Peterande/D-FINE ``.pth``) to our transformers model.

The official training code saves ``{"model": state_dict}`` (and, with EMA, ``{"ema": {"module":
state_dict}}``); its module names (``backbone.stages``, ``encoder.fpn_blocks.N.cv2``,
``decoder.dec_score_head``...) differ from ``DFineForObjectDetection``'s. ``convert_state_dict``
renames every key through an explicit table, splits the fused ``in_proj`` attention weights into
q/k/v, and drops only tensors the model recomputes itself (the ``decoder.anchors`` and
``decoder.valid_mask`` buffers, which the official decoder registers for its ``eval_spatial_size``
while ours derives them from each input) or that duplicate another entry (``decoder.up`` and
``decoder.reg_scale`` are the same parameters as ``decoder.decoder.up``/``reg_scale``, which are
loaded). BatchNorm ``num_batches_tracked`` counters are converted too, so a round trip keeps them.
A key no rule knows is an error, never silently skipped: the strict loader in ``weights.py`` then
reports any missing, unexpected or mis-shaped tensors. ``official_export`` is the inverse.

DEIM's D-FINE checkpoints use the same module names, so they convert the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from dfine_bench.errors import CheckpointError

#: Official -> transformers key rules, tried in order; the first full match wins.
#: Backbone keys are renamed component-wise afterwards (conv -> convolution, bn -> normalization).
_RULES: tuple[tuple[str, str], ...] = (
    # backbone (HGNetv2)
    (r"backbone\.stem\.(.+)", r"model.backbone.model.embedder.\1"),
    (r"backbone\.stages\.(.+)", r"model.backbone.model.encoder.stages.\1"),
    # hybrid encoder: input projections, AIFI transformer layer, CCFM blocks
    (r"encoder\.input_proj\.(\d+)\.conv\.(.+)", r"model.encoder_input_proj.\1.0.\2"),
    (r"encoder\.input_proj\.(\d+)\.norm\.(.+)", r"model.encoder_input_proj.\1.1.\2"),
    (
        r"encoder\.encoder\.(\d+)\.layers\.(\d+)\.self_attn\.out_proj\.(.+)",
        r"model.encoder.aifi.\1.layers.\2.self_attn.o_proj.\3",
    ),
    (
        r"encoder\.encoder\.(\d+)\.layers\.(\d+)\.linear1\.(.+)",
        r"model.encoder.aifi.\1.layers.\2.mlp.layers.0.\3",
    ),
    (
        r"encoder\.encoder\.(\d+)\.layers\.(\d+)\.linear2\.(.+)",
        r"model.encoder.aifi.\1.layers.\2.mlp.layers.1.\3",
    ),
    (
        r"encoder\.encoder\.(\d+)\.layers\.(\d+)\.norm1\.(.+)",
        r"model.encoder.aifi.\1.layers.\2.self_attn_layer_norm.\3",
    ),
    (
        r"encoder\.encoder\.(\d+)\.layers\.(\d+)\.norm2\.(.+)",
        r"model.encoder.aifi.\1.layers.\2.final_layer_norm.\3",
    ),
    (r"encoder\.lateral_convs\.(.+)", r"model.encoder.lateral_convs.\1"),
    (r"encoder\.(fpn|pan)_blocks\.(\d+)\.cv1\.(.+)", r"model.encoder.\1_blocks.\2.conv1.\3"),
    (r"encoder\.(fpn|pan)_blocks\.(\d+)\.cv2\.0\.(.+)", r"model.encoder.\1_blocks.\2.csp_rep1.\3"),
    (r"encoder\.(fpn|pan)_blocks\.(\d+)\.cv2\.1\.(.+)", r"model.encoder.\1_blocks.\2.conv2.\3"),
    (r"encoder\.(fpn|pan)_blocks\.(\d+)\.cv3\.0\.(.+)", r"model.encoder.\1_blocks.\2.csp_rep2.\3"),
    (r"encoder\.(fpn|pan)_blocks\.(\d+)\.cv3\.1\.(.+)", r"model.encoder.\1_blocks.\2.conv3.\3"),
    (r"encoder\.(fpn|pan)_blocks\.(\d+)\.cv4\.(.+)", r"model.encoder.\1_blocks.\2.conv4.\3"),
    (r"encoder\.downsample_convs\.(\d+)\.0\.cv(\d)\.(.+)", r"model.encoder.downsample_convs.\1.conv\2.\3"),
    # decoder (DFINETransformer)
    (r"decoder\.input_proj\.(\d+)\.conv\.(.+)", r"model.decoder_input_proj.\1.0.\2"),
    (r"decoder\.input_proj\.(\d+)\.norm\.(.+)", r"model.decoder_input_proj.\1.1.\2"),
    (
        r"decoder\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.(.+)",
        r"model.decoder.layers.\1.self_attn.o_proj.\2",
    ),
    (r"decoder\.decoder\.layers\.(\d+)\.cross_attn\.(.+)", r"model.decoder.layers.\1.encoder_attn.\2"),
    (r"decoder\.decoder\.layers\.(\d+)\.gateway\.(.+)", r"model.decoder.layers.\1.gateway.\2"),
    (r"decoder\.decoder\.layers\.(\d+)\.norm1\.(.+)", r"model.decoder.layers.\1.self_attn_layer_norm.\2"),
    (r"decoder\.decoder\.layers\.(\d+)\.norm2\.(.+)", r"model.decoder.layers.\1.encoder_attn_layer_norm.\2"),
    (r"decoder\.decoder\.layers\.(\d+)\.norm3\.(.+)", r"model.decoder.layers.\1.final_layer_norm.\2"),
    (r"decoder\.decoder\.layers\.(\d+)\.linear1\.(.+)", r"model.decoder.layers.\1.mlp.layers.0.\2"),
    (r"decoder\.decoder\.layers\.(\d+)\.linear2\.(.+)", r"model.decoder.layers.\1.mlp.layers.1.\2"),
    (r"decoder\.decoder\.lqe_layers\.(.+)", r"model.decoder.lqe_layers.\1"),
    (r"decoder\.decoder\.(up|reg_scale)", r"model.decoder.\1"),
    (r"decoder\.dec_score_head\.(.+)", r"model.decoder.class_embed.\1"),
    (r"decoder\.dec_bbox_head\.(.+)", r"model.decoder.bbox_embed.\1"),
    (r"decoder\.(pre_bbox_head|query_pos_head)\.(.+)", r"model.decoder.\1.\2"),
    (r"decoder\.denoising_class_embed\.(.+)", r"model.denoising_class_embed.\1"),
    (r"decoder\.enc_output\.proj\.(.+)", r"model.enc_output.0.\1"),
    (r"decoder\.enc_output\.norm\.(.+)", r"model.enc_output.1.\1"),
    (r"decoder\.(enc_score_head|enc_bbox_head)\.(.+)", r"model.\1.\2"),
)

#: Fused attention projections: (official pattern, our prefix template); split into q, k, v.
_QKV_RULES: tuple[tuple[str, str], ...] = (
    (
        r"encoder\.encoder\.(\d+)\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)",
        r"model.encoder.aifi.\1.layers.\2.self_attn.{}_proj.\3",
    ),
    (
        r"decoder\.decoder\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)",
        r"model.decoder.layers.\1.self_attn.{}_proj.\2",
    ),
)

#: Tensors the model derives itself (anchors and mask from the input size) or that duplicate
#: another entry (the decoder's ``up``/``reg_scale`` are the same parameters as the layer stack's).
_DROPPED = re.compile(r"decoder\.(anchors|valid_mask|up|reg_scale)")

_BACKBONE_COMPONENTS = {"conv": "convolution", "bn": "normalization"}

#: Keys whose presence marks a state dict as official D-FINE / DEIM format.
OFFICIAL_MARKERS = ("decoder.dec_score_head.0.weight", "decoder.decoder.layers.0.self_attn.in_proj_weight")


def is_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the keys follow the official D-FINE/DEIM layout."""
    return any(marker in state_dict for marker in OFFICIAL_MARKERS)


def unwrap_official_checkpoint(checkpoint: object, path: str) -> dict[str, torch.Tensor]:
    """The model state dict inside an official training checkpoint.

    Prefers the EMA weights (``ema.module``), which are what the authors evaluate and release,
    then ``model``, then a bare state dict.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(checkpoint).__name__}")
    ema = checkpoint.get("ema")
    if isinstance(ema, Mapping) and isinstance(ema.get("module"), Mapping):
        state = ema["module"]
    elif isinstance(checkpoint.get("model"), Mapping):
        state = checkpoint["model"]
    elif isinstance(checkpoint.get("module"), Mapping):
        state = checkpoint["module"]
    else:
        state = checkpoint
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            f"{path}: no tensors found under 'ema.module', 'model' or 'module'; "
            f"top-level keys are {sorted(map(str, checkpoint))[:10]}"
        )
    return tensors


def _rename_backbone(key: str) -> str:
    parts = key.split(".")
    return ".".join(_BACKBONE_COMPONENTS.get(p, p) for p in parts)


def convert_state_dict(
    official: Mapping[str, torch.Tensor], path: str = "<state dict>"
) -> dict[str, torch.Tensor]:
    """Rename an official D-FINE state dict to ``DFineForObjectDetection`` keys.

    Raises ``CheckpointError`` listing every key no rule maps.
    """
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in official.items():
        if _DROPPED.fullmatch(key):
            continue
        new_keys = _convert_key(key, tensor)
        if new_keys is None:
            if not key.endswith("num_batches_tracked"):  # a counter, not a weight: never an error
                unknown.append(key)
            continue
        converted.update(new_keys)
    if unknown:
        shown = ", ".join(unknown[:20]) + (f" ... (+{len(unknown) - 20} more)" if len(unknown) > 20 else "")
        raise CheckpointError(
            f"{path}: {len(unknown)} tensors have no mapping to the D-FINE model: {shown}. "
            "Is this an official D-FINE/DEIM checkpoint?"
        )
    return converted


def _convert_key(key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor] | None:
    for pattern, template in _QKV_RULES:
        match = re.fullmatch(pattern, key)
        if match:
            # nn.MultiheadAttention stores q, k, v stacked along dim 0
            q, k, v = tensor.chunk(3, dim=0)
            base = match.expand(template)
            return {base.format("q"): q, base.format("k"): k, base.format("v"): v}
    for pattern, replacement in _RULES:
        match = re.fullmatch(pattern, key)
        if match:
            new_key = match.expand(replacement)
            if key.startswith("backbone."):
                new_key = _rename_backbone(new_key)
            return {new_key: tensor}
    return None


def infer_num_classes(official: Mapping[str, torch.Tensor]) -> int | None:
    """Class count of an official checkpoint's head (rows of the first score head)."""
    weight = official.get("decoder.dec_score_head.0.weight")
    return int(weight.shape[0]) if weight is not None else None
