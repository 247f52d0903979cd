"""Fine-grained Distribution Refinement (FDR) as a box head any DETR decoder can carry.

D-FINE (arXiv 2410.13842, Sec. 3.2) replaces a DETR's per-layer box regression ("predict a delta,
add it to the inverse-sigmoid of the previous box") by distributions: for each of a box's four
edges, layer ``l`` predicts logits over ``N + 1`` bins; the edge offset is the expectation of the
non-uniform weighting function ``W(n)`` under the softmax of those logits. Each layer *adds* its
logits to the previous layer's (residual refinement of the distribution) and all offsets are
measured from one initial box, predicted once after the first layer (``pre_bbox_head``). A
localization-quality estimate (LQE) from the top-k probabilities of each edge is added to the
class logits, as D-FINE does.

Parameters, as the paper's Table 4 names them, and the names in D-FINE's code:

* ``N`` (``bins``; code ``max_num_bins`` / ``reg_max``): 32;
* ``a`` (code ``up``): W's ends are +-2a box-widths (heights) from the initial box edges; 1/2;
* ``c`` (code ``1 / reg_scale``): curvature; W is in units of ``c`` times the box size; 1/4.

The decoding loop (``fdr_decode``) is family-agnostic: the family passes a ``run_layer(i, hidden,
boxes)`` closure that runs its own decoder layer ``i`` with its own positional encoding of the
current boxes; everything box-related is here. ``tests/fdr/test_head.py`` checks that this loop on
D-FINE's layers and weights reproduces transformers' ``DFineDecoder`` within 1e-5.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dfine_bench.errors import ConfigError


@dataclass(frozen=True)
class FdrSettings:
    """Hyper-parameters of the FDR head (defaults: the paper's Table 4 / D-FINE's configs)."""

    bins: int = 32  # N: a distribution has N + 1 bins per edge
    a: float = 0.5  # upper bound of W(n)
    c: float = 0.25  # curvature of W(n)
    quality: bool = True  # the localization-quality estimator added to the class logits
    quality_topk: int = 4
    quality_hidden: int = 64
    quality_layers: int = 2

    def validate(self, where: str = "fdr") -> None:
        if self.bins < 4 or self.bins % 2:
            raise ConfigError(
                f"{where}.bins must be an even number >= 4 (the paper uses 32), got {self.bins}"
            )
        if not self.a > 0 or not self.c > 0:
            raise ConfigError(
                f"{where}.a and {where}.c must be positive (paper: 0.5, 0.25), got {self.a}, {self.c}"
            )
        if not 1 <= self.quality_topk <= self.bins + 1:
            raise ConfigError(f"{where}.quality_topk must be in [1, bins + 1], got {self.quality_topk}")

    @property
    def reg_scale(self) -> float:
        return 1.0 / self.c


def weighting_function(bins: int, up: torch.Tensor, reg_scale: torch.Tensor) -> torch.Tensor:
    """W(n), n = 0..N, in units of ``c`` times the box size (multiply by ``c`` for the paper's W).

    Symmetric around W(N/2) = 0; between the ends it grows geometrically with ratio
    ``(a/c + 1)^(2/(N-2))`` (fine steps near the initial edge, coarse far away); the ends are
    ``+-2a/c``.
    """
    bound = up.abs()[0] * reg_scale.abs()[0]  # a / c
    step = (bound + 1) ** (2.0 / (bins - 2))
    exponents = torch.arange(1, bins // 2, device=up.device, dtype=up.dtype)
    right = step**exponents - 1
    zero = torch.zeros(1, device=up.device, dtype=up.dtype)
    end = (2 * bound).reshape(1)
    return torch.cat([-end, -right.flip(0), zero, right, end])


def distribution_offsets(corner_logits: torch.Tensor, project: torch.Tensor) -> torch.Tensor:
    """Expected W under softmax(logits) per edge: (B, Q, 4 * (N + 1)) -> (B, Q, 4)."""
    bins = project.shape[0]
    probs = F.softmax(corner_logits.reshape(*corner_logits.shape[:-1], 4, bins), dim=-1)
    return (probs * project).sum(-1)


def distance_to_boxes(initial: torch.Tensor, offsets: torch.Tensor, reg_scale: torch.Tensor) -> torch.Tensor:
    """Boxes (cxcywh) whose edges lie ``(1/2 + c * W)`` box sizes from the initial box's centre."""
    scale = reg_scale.abs()
    cx, cy, w, h = initial.unbind(-1)
    x0 = cx - (0.5 * scale + offsets[..., 0]) * (w / scale)
    y0 = cy - (0.5 * scale + offsets[..., 1]) * (h / scale)
    x1 = cx + (0.5 * scale + offsets[..., 2]) * (w / scale)
    y1 = cy + (0.5 * scale + offsets[..., 3]) * (h / scale)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class Mlp(nn.Module):
    """ReLU MLP; ``layers.{i}`` naming as D-FINE's so weights map one to one."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1)
        outs = [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class QualityEstimator(nn.Module):
    """LQE: an MLP on the top-k probabilities (and their mean) of each edge, added to the logits."""

    def __init__(self, settings: FdrSettings) -> None:
        super().__init__()
        self.topk = settings.quality_topk
        self.bins = settings.bins
        self.reg_conf = Mlp(4 * (self.topk + 1), settings.quality_hidden, 1, settings.quality_layers)

    def forward(self, logits: torch.Tensor, corner_logits: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(corner_logits.reshape(*corner_logits.shape[:-1], 4, self.bins + 1), dim=-1)
        top, _ = probs.topk(self.topk, dim=-1)
        stat = torch.cat([top, top.mean(dim=-1, keepdim=True)], dim=-1)
        return logits + self.reg_conf(stat.flatten(-2))


class FdrBoxHead(nn.Module):
    """The box part of an FDR decoder: initial box head, per-layer distribution heads, LQE, W(n)."""

    up: torch.Tensor
    reg_scale: torch.Tensor

    def __init__(self, d_model: int, num_layers: int, settings: FdrSettings) -> None:
        super().__init__()
        settings.validate()
        self.settings = settings
        self.num_layers = num_layers
        self.pre_bbox_head = Mlp(d_model, d_model, 4, 3)
        self.bbox_embed = nn.ModuleList(
            Mlp(d_model, d_model, 4 * (settings.bins + 1), 3) for _ in range(num_layers)
        )
        self.lqe_layers = (
            nn.ModuleList(QualityEstimator(settings) for _ in range(num_layers)) if settings.quality else None
        )
        # buffers, not parameters: fixed by the settings, saved with the weights so a checkpoint
        # records the W(n) it was trained with
        self.register_buffer("up", torch.tensor([settings.a]))
        self.register_buffer("reg_scale", torch.tensor([settings.reg_scale]))

    def zero_init_layers(self) -> list[nn.Linear]:
        """D-FINE's init: the last layer of every box and quality MLP starts at zero, so the first
        forward predicts the initial box (uniform W expectation 0) and leaves the logits alone."""
        heads = [self.pre_bbox_head, *self.bbox_embed]
        if self.lqe_layers is not None:
            heads += [q.reg_conf for q in self.lqe_layers]
        return [mlp.layers[-1] for mlp in heads]

    def init_module(self, module: nn.Module, constant: Callable[[torch.Tensor, float], object]) -> None:
        """Initialise ``module`` if it is part of this head with a non-default init (called per module
        by transformers' ``_init_weights``, whose ``constant`` skips tensors loaded from a checkpoint)."""
        if module is self:
            constant(self.up, self.settings.a)
            constant(self.reg_scale, self.settings.reg_scale)
        elif any(module is layer for layer in self.zero_init_layers()):
            constant(module.weight, 0.0)  # type: ignore[arg-type]
            constant(module.bias, 0.0)  # type: ignore[arg-type]

    def reset_fdr_parameters(self) -> None:
        """Apply D-FINE's init to the whole head (outside transformers' init machinery)."""
        with torch.no_grad():
            for module in self.modules():
                self.init_module(module, nn.init.constant_)

    def project(self) -> torch.Tensor:
        return weighting_function(self.settings.bins, self.up, self.reg_scale)

    def initial_boxes(self, hidden: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """The first layer's box; a 2-d reference (Deformable-DETR's points) refines the centre only."""
        delta = self.pre_bbox_head(hidden)
        ref = inverse_sigmoid(reference)
        if reference.shape[-1] == 2:
            return torch.cat([delta[..., :2] + ref, delta[..., 2:]], dim=-1).sigmoid()
        return (delta + ref).sigmoid()


@dataclass
class FdrDecoded:
    """What ``fdr_decode`` returns; layer-stacked tensors have the layer on dim 1.

    ``logits``/``boxes``: (B, L, Q, C) / (B, L, Q, 4) per decoder layer (logits of layers
    without a class head call are absent: ``logits`` is None when no ``class_embed`` is given);
    ``corners``: (B, L, Q, 4(N+1)) distribution logits; ``initial``: (B, Q, 4) the detached
    initial boxes every layer measures from; ``pre_boxes``/``pre_logits``: the initial box head's
    own prediction (trained like a layer's; logits only in training).
    """

    hidden_states: torch.Tensor
    boxes: torch.Tensor
    corners: torch.Tensor
    initial: torch.Tensor
    pre_boxes: torch.Tensor
    logits: torch.Tensor | None = None
    pre_logits: torch.Tensor | None = None


#: ``run_layer(i, hidden, boxes)`` runs decoder layer ``i`` on ``hidden`` with the current boxes
#: (sigmoid space, detached) as its reference; returns the new hidden states.
RunLayer = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def fdr_decode(
    head: FdrBoxHead,
    hidden: torch.Tensor,
    reference: torch.Tensor,
    run_layer: RunLayer,
    class_embed: nn.ModuleList | None = None,
    training: bool = False,
) -> FdrDecoded:
    """Run ``head.num_layers`` decoder layers with FDR box refinement.

    ``reference``: the decoder's starting boxes (or points) in sigmoid space. Class logits are
    computed at every layer, as the baselines' transformers ports do; the quality term is added
    where D-FINE adds it (every layer in training, the last layer in inference).
    """
    project = head.project()
    ref = reference
    prev_corners: torch.Tensor | float = 0.0
    prev_hidden: torch.Tensor | float = 0.0
    initial = pre_boxes = pre_logits = None
    hs, boxes_all, corners_all, logits_all = [], [], [], []
    last = head.num_layers - 1
    for i in range(head.num_layers):
        hidden = run_layer(i, hidden, ref)
        if i == 0:
            pre_boxes = head.initial_boxes(hidden, ref)
            initial = pre_boxes.detach()
            if class_embed is not None and training:
                pre_logits = class_embed[0](hidden)
        assert initial is not None
        # residual refinement: this layer's logits are added to the previous layer's (kept in the
        # graph), the previous hidden state enters detached (D-FINE's output_detach)
        corners = head.bbox_embed[i](hidden + prev_hidden) + prev_corners
        boxes = distance_to_boxes(initial, distribution_offsets(corners, project), head.reg_scale)
        prev_corners, prev_hidden, ref = corners, hidden.detach(), boxes.detach()
        if class_embed is not None:
            logits = class_embed[i](hidden)
            if head.lqe_layers is not None and (training or i == last):
                logits = head.lqe_layers[i](logits, corners)
            logits_all.append(logits)
        hs.append(hidden)
        boxes_all.append(boxes)
        corners_all.append(corners)
    assert initial is not None and pre_boxes is not None
    return FdrDecoded(
        hidden_states=torch.stack(hs, dim=1),
        boxes=torch.stack(boxes_all, dim=1),
        corners=torch.stack(corners_all, dim=1),
        initial=initial,
        pre_boxes=pre_boxes,
        logits=torch.stack(logits_all, dim=1) if logits_all else None,
        pre_logits=pre_logits,
    )


def parameter_delta(d_model: int, num_layers: int, settings: FdrSettings) -> dict[str, int]:
    """Parameters FDR adds to a baseline whose per-layer box head is a 3-layer MLP ``d -> d -> 4``
    (RT-DETR, Deformable-DETR with refinement), by where they come from."""
    width = 4 * (settings.bins + 1)
    dims = [4 * (settings.quality_topk + 1)] + [settings.quality_hidden] * (settings.quality_layers - 1) + [1]
    lqe = sum(i * o + o for i, o in itertools.pairwise(dims))
    return {
        # each layer's last linear predicts 4(N+1) logits instead of 4 deltas
        "distribution_outputs": num_layers * (d_model + 1) * (width - 4),
        # the initial box head after the first layer (the baseline's first layer refines the query box)
        "initial_box_head": 2 * (d_model * d_model + d_model) + d_model * 4 + 4,
        "quality_estimators": num_layers * lqe if settings.quality else 0,
    }
