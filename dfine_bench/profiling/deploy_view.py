"""A deploy-mode view of a model for counting, as the official ``deploy()`` would leave it.

The paper counts params and GFLOPs on ``model.deploy()``: RepVGG blocks (a 3x3 and a 1x1
conv+BN branch, summed) are re-parameterised into one 3x3 conv with bias. The Hugging Face
ports keep both branches, so ``deploy_copy`` fuses them on a copy (same outputs, exact
arithmetic), leaving the adapter's own model untouched.

A second difference is not structural: the HF ports run the encoder's box head
(``enc_bbox_head``) on every encoder token and pick the top-k afterwards, while the official
code picks the ``num_queries`` tokens first and runs the head on those (same result).
``topk_head_flops_correction`` returns the FLOPs that ordering adds, to subtract.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class FusedRepVgg(nn.Module):
    """One 3x3 conv with bias (the two branches and their batch norms folded in), then the activation."""

    def __init__(self, conv: nn.Conv2d, activation: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x))


def _conv_norm(branch: Any) -> tuple[nn.Conv2d, nn.BatchNorm2d] | None:
    conv, norm = getattr(branch, "conv", None), getattr(branch, "norm", None)
    act = getattr(branch, "activation", getattr(branch, "act", nn.Identity()))
    if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and isinstance(act, nn.Identity):
        return conv, norm
    return None


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    std = (norm.running_var + norm.eps).sqrt()
    t = (norm.weight / std).reshape(-1, 1, 1, 1)
    bias = norm.bias - norm.running_mean * norm.weight / std
    if conv.bias is not None:
        bias = bias + conv.bias * norm.weight / std
    return conv.weight * t, bias


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
    with torch.no_grad():
        fused.weight.copy_(w3 + F.pad(w1, [1, 1, 1, 1]))
        fused.bias.copy_(bias3 + bias1)
    act = getattr(block, "activation", getattr(block, "act", nn.Identity()))
    return FusedRepVgg(fused, act if isinstance(act, nn.Module) else nn.Identity())


def deploy_copy(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` with every RepVGG block fused; the names of the fused blocks."""
    if not any("repvgg" in type(m).__name__.lower() for m in model.modules()):
        return model, []
    out = copy.deepcopy(model).eval()
    fused_names: list[str] = []
    for name, module in list(out.named_modules()):
        if "repvgg" not in type(module).__name__.lower():
            continue
        fused = fuse_repvgg(module)
        if fused is None:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, child, fused)
        fused_names.append(name)
    return out, fused_names


def num_queries(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    q = getattr(config, "num_queries", None)
    return int(q) if isinstance(q, int) else None


def find_topk_heads(model: nn.Module) -> dict[str, nn.Module]:
    """Modules named ``enc_bbox_head`` (the HF RT-DETR/D-FINE encoder box head) by path."""
    return {n: m for n, m in model.named_modules() if n.rpartition(".")[2] == "enc_bbox_head"}
