"""A deploy-mode view of a model for counting, as the official ``deploy()`` would leave it.

The paper counts params and GFLOPs on ``model.deploy()``, which calls ``convert_to_deploy`` on
every module that has one. For the DETR-family encoders that means:

* RepVGG blocks (a 3x3 and a 1x1 conv+BN branch, summed) are re-parameterised into one 3x3
  conv with bias (``RepVggBlock.convert_to_deploy``: RT-DETR, RT-DETRv2, D-FINE, DEIM);
* in D-FINE's hybrid encoder every other conv+BN pair (``ConvNormLayer_fuse``: the CSP/ELAN
  blocks, the lateral convs, the SCDown downsamplers) is folded into one conv with bias.
  RT-DETR's encoder has no such layer and keeps its batch norms, and neither code base folds
  the encoder's input projections or the backbone, so this fold is keyed on the model type
  (``CONV_NORM_FOLD_MODEL_TYPES``).

Both folds change what calflops counts: a conv with bias costs 1 FLOP per output element for
the bias, an eval-mode affine batch norm 2, so each fold removes 1 FLOP per output element (and
one ``out_channels`` of parameters). The Hugging Face ports keep the unfused layers, so
``deploy_copy`` fuses them on a copy (same outputs, exact arithmetic), leaving the adapter's own
model untouched.

What ``deploy()`` keeps is not only what inference runs: the denoising class embedding
(``denoising_class_embed``, ``(num_classes + 1) x hidden_dim``) is training-only but stays in the
deploy model, and the official ``get_info.py`` counts ``sum(p.numel())`` over that model. The
names of such kept modules are ``DEPLOY_KEEPS`` (``deploy_kept_modules`` finds them).

A third difference is not structural: the HF ports run the encoder's box head
(``enc_bbox_head``) on every encoder token and pick the top-k afterwards, while the official
code picks the ``num_queries`` tokens first and runs the head on those (same result).
``find_topk_heads`` and ``num_queries`` let the counter subtract what that ordering adds.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


class FusedConvAct(nn.Module):
    """One conv with bias (batch norms folded in), then the activation: what ``deploy()`` leaves."""

    def __init__(self, conv: nn.Conv2d, activation: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x))


class FusedRepVgg(FusedConvAct):
    """A RepVGG block re-parameterised: one 3x3 conv with bias (both branches and their batch norms)."""


class FusedConvNorm(FusedConvAct):
    """A conv+BN(+activation) layer with the batch norm folded into the conv (``ConvNormLayer_fuse``)."""


#: ``config.model_type`` of the HF models whose official ``deploy()`` folds each conv+BN pair of
#: the hybrid encoder (D-FINE's ``ConvNormLayer_fuse``; measured against Peterande/D-FINE). The
#: DEIM D-FINE variants are built on the same HF class, and DEIM's encoder has the same layer.
#: RT-DETR (``rt_detr``, ``rt_detr_v2``) keeps its encoder's batch norms: not listed.
CONV_NORM_FOLD_MODEL_TYPES = frozenset({"d_fine"})


def _conv_norm(branch: Any, *, with_activation: bool = False) -> tuple[nn.Conv2d, nn.BatchNorm2d] | None:
    """The (conv, batch norm) of a conv+BN layer; without ``with_activation`` only an identity one."""
    conv, norm = getattr(branch, "conv", None), getattr(branch, "norm", None)
    act = getattr(branch, "activation", getattr(branch, "act", nn.Identity()))
    if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)):
        return None
    if not (isinstance(act, nn.Identity) or (with_activation and isinstance(act, nn.Module))):
        return None
    return conv, norm


def _hw(value: tuple[int, ...]) -> tuple[int, int]:
    """A ``Conv2d``'s kernel size, stride or dilation: typed ``tuple[int, ...]``, an (h, w) pair."""
    return cast("tuple[int, int]", value)


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    # an eval-mode affine batch norm has all four (the deploy view is built from eval models)
    assert norm.running_var is not None and norm.running_mean is not None
    assert norm.weight is not None and norm.bias is not None
    std = (norm.running_var + norm.eps).sqrt()
    t = (norm.weight / std).reshape(-1, 1, 1, 1)
    bias = norm.bias - norm.running_mean * norm.weight / std
    if conv.bias is not None:
        bias = bias + conv.bias * norm.weight / std
    return conv.weight * t, bias


def _activation(block: nn.Module) -> nn.Module:
    act = getattr(block, "activation", getattr(block, "act", nn.Identity()))
    return act if isinstance(act, nn.Module) else nn.Identity()


def fuse_repvgg(block: nn.Module) -> FusedRepVgg | None:
    """The fused equivalent of a RepVGG block (``act(conv1(x) + conv2(x))``), or None if it is not one."""
    b1, b2 = _conv_norm(getattr(block, "conv1", None)), _conv_norm(getattr(block, "conv2", None))
    if b1 is None or b2 is None:
        return None
    (c3, n3), (c1, n1) = b1, b2
    ok = (
        c3.kernel_size == (3, 3)
        and c1.kernel_size == (1, 1)
        and c3.stride == c1.stride == (1, 1)
        and c3.groups == c1.groups == 1
        and c3.padding == (1, 1)
        and c1.padding == (0, 0)
    )
    if not ok:
        return None
    w3, bias3 = _fold(c3, n3)
    w1, bias1 = _fold(c1, n1)
    fused = nn.Conv2d(c3.in_channels, c3.out_channels, 3, 1, padding=1, bias=True)
    fused = fused.to(device=c3.weight.device, dtype=c3.weight.dtype)
    assert fused.bias is not None  # built with bias=True
    with torch.no_grad():
        fused.weight.copy_(w3 + F.pad(w1, [1, 1, 1, 1]))
        fused.bias.copy_(bias3 + bias1)
    return FusedRepVgg(fused, _activation(block))


def fuse_conv_norm(layer: nn.Module) -> FusedConvNorm | None:
    """``act(norm(conv(x)))`` as one conv with bias, then ``act``.

    What D-FINE's ``ConvNormLayer_fuse.convert_to_deploy`` does; None if ``layer`` is not conv+BN."""
    pair = _conv_norm(layer, with_activation=True)
    if pair is None:
        return None
    conv, norm = pair
    weight, bias = _fold(conv, norm)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        _hw(conv.kernel_size),
        _hw(conv.stride),
        padding=conv.padding if isinstance(conv.padding, str) else _hw(conv.padding),
        dilation=_hw(conv.dilation),
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    assert fused.bias is not None  # built with bias=True
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return FusedConvNorm(fused, _activation(layer))


def _model_type(model: nn.Module) -> str | None:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return model_type if isinstance(model_type, str) else None


def conv_norm_layers_to_fold(model: nn.Module) -> list[str]:
    """Names of the conv+BN layers the official ``deploy()`` folds: the ``*ConvNormLayer`` modules
    inside the hybrid encoder of the model types in ``CONV_NORM_FOLD_MODEL_TYPES`` (none otherwise)."""
    if _model_type(model) not in CONV_NORM_FOLD_MODEL_TYPES:
        return []
    names: list[str] = []
    for enc_name, encoder in model.named_modules():
        if not type(encoder).__name__.endswith("HybridEncoder"):
            continue
        for name, layer in encoder.named_modules():
            if type(layer).__name__.endswith("ConvNormLayer") and _conv_norm(layer, with_activation=True):
                names.append(f"{enc_name}.{name}" if enc_name else name)
    return names


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def deploy_copy(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` as ``deploy()`` leaves it; the names of the fused blocks and layers.

    RepVGG blocks are fused first (their inner conv+BN branches disappear with them), then the
    conv+BN layers that ``conv_norm_layers_to_fold`` names. Without either, ``model`` itself.
    """
    has_repvgg = any("repvgg" in type(m).__name__.lower() for m in model.modules())
    if not has_repvgg and not conv_norm_layers_to_fold(model):
        return model, []
    out = copy.deepcopy(model).eval()
    fused_names: list[str] = []
    for name, module in list(out.named_modules()):
        if "repvgg" not in type(module).__name__.lower():
            continue
        fused = fuse_repvgg(module)
        if fused is not None:
            _replace(out, name, fused)
            fused_names.append(name)
    for name in conv_norm_layers_to_fold(out):
        fused_layer = fuse_conv_norm(out.get_submodule(name))
        if fused_layer is not None:
            _replace(out, name, fused_layer)
            fused_names.append(name)
    return out, fused_names


def num_queries(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    q = getattr(config, "num_queries", None)
    return int(q) if isinstance(q, int) else None


def find_topk_heads(model: nn.Module) -> dict[str, nn.Module]:
    """Modules named ``enc_bbox_head`` (the HF RT-DETR/D-FINE encoder box head) by path."""
    return {n: m for n, m in model.named_modules() if n.rpartition(".")[2] == "enc_bbox_head"}


#: Last name components of modules the official ``deploy()`` keeps although inference never runs
#: them: D-FINE's and RT-DETR's denoising class embedding (D-FINE-N: 81 x 128 = 10,368 parameters,
#: the whole gap between the parameters that run and get_info.py's count; measured for N..X).
DEPLOY_KEEPS = ("denoising_class_embed",)


def deploy_kept_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules named in ``DEPLOY_KEEPS``, by path (counted in ``params`` even though they never run)."""
    return {n: m for n, m in model.named_modules() if n.rpartition(".")[2] in DEPLOY_KEEPS}
