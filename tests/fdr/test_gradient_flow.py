"""Training guards for the FDR decoding loop: where gradients flow, and where they are cut.

``test_head.py`` checks the forward pass against transformers' ``DFineDecoder``; a detach point
moved or dropped changes no forward value, only training. D-FINE's decoder (the official
``dfine_decoder.py``, and transformers' port, which keeps the same layout) cuts the graph in three
places and keeps it in one:

* the initial box enters every layer's boxes detached (``ref_points_initial = pre_bboxes.detach()``),
  while the initial box head is trained by its own output's loss (``pre_bboxes`` is not detached);
* the previous layer's hidden state enters the next box head detached (``output_detach``);
* the previous layer's distribution logits are added *in the graph* (``pred_corners_undetach``), so a
  later layer's loss trains every earlier box head;
* the next layer's reference box is detached (``ref_points_detach``).

Here the same losses are backpropagated through ``fdr_decode`` and through transformers'
``DFineDecoder`` with the same weights, parameter by parameter, and each detach point is checked
on its own on a tiny head with stand-in layers.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dfine_bench.fdr.head import FdrBoxHead, FdrDecoded, FdrSettings, fdr_decode

D, LAYERS, CLASSES, QUERIES, BINS = 32, 3, 3, 5, 8
SHAPES = [(4, 4), (2, 2), (1, 1)]


# --- the whole loop against the official layout (transformers' DFineDecoder) -----------------------


def _official_decoder():
    from transformers import DFineConfig
    from transformers.models.d_fine.modeling_d_fine import DFineDecoder, DFineMLP

    torch.manual_seed(0)
    config = DFineConfig(
        d_model=D,
        decoder_layers=LAYERS,
        decoder_attention_heads=2,
        decoder_ffn_dim=32,
        num_labels=CLASSES,
        max_num_bins=BINS,
        lqe_hidden_dim=16,
        decoder_n_points=[1, 1, 1],
        decoder_in_channels=[D] * 3,
        encoder_hidden_dim=D,
    )
    decoder = DFineDecoder(config).train()
    decoder.class_embed = nn.ModuleList(nn.Linear(D, CLASSES) for _ in range(LAYERS))
    decoder.bbox_embed = nn.ModuleList(DFineMLP(D, D, 4 * (BINS + 1), 3) for _ in range(LAYERS))
    with torch.no_grad():  # D-FINE zero-inits the last box/LQE layers: perturb so every path carries
        for p in decoder.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return decoder


def _head_like(decoder: nn.Module) -> FdrBoxHead:
    head = FdrBoxHead(D, LAYERS, FdrSettings(bins=BINS, quality_hidden=16))
    wanted = ("pre_bbox_head.", "bbox_embed.", "lqe_layers.")
    state = {
        k: v for k, v in decoder.state_dict().items() if k.startswith(wanted) or k in ("up", "reg_scale")
    }
    head.load_state_dict(state, strict=True)
    return head


def _inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    tokens = sum(h * w for h, w in SHAPES)
    return {
        "memory": torch.randn(2, tokens, D, generator=gen),
        "reference": torch.randn(2, QUERIES, 4, generator=gen),  # logit space
        "queries": torch.randn(2, QUERIES, D, generator=gen),
    }


def _leaves(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fresh leaves, so that the gradients reaching the decoder's inputs can be compared too."""
    return {k: v.clone().requires_grad_(k != "reference") for k, v in inputs.items()}


def _run_official(decoder: nn.Module, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    shapes = torch.tensor(SHAPES)
    out = decoder(
        encoder_hidden_states=x["memory"],
        reference_points=x["reference"],
        inputs_embeds=x["queries"],
        spatial_shapes=shapes,
        spatial_shapes_list=SHAPES,
        level_start_index=torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]]),
    )
    # in training transformers stacks the initial box head's output first, then every layer's
    return {
        "pre_boxes": out.intermediate_reference_points[:, 0],
        "pre_logits": out.intermediate_logits[:, 0],
        "boxes": out.intermediate_reference_points[:, 1:],
        "logits": out.intermediate_logits[:, 1:],
        "corners": out.intermediate_predicted_corners,
    }


def _run_ours(decoder: nn.Module, head: FdrBoxHead, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    shapes = torch.tensor(SHAPES)

    def run_layer(i: int, hidden: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        position = decoder.query_pos_head(boxes).clamp(min=-10, max=10)
        return decoder.layers[i](
            hidden,
            position_embeddings=position,
            reference_points=boxes.unsqueeze(2),
            spatial_shapes=shapes,
            spatial_shapes_list=SHAPES,
            encoder_hidden_states=x["memory"],
        )

    out = fdr_decode(head, x["queries"], x["reference"].sigmoid(), run_layer, decoder.class_embed, True)
    assert out.logits is not None and out.pre_logits is not None
    return {
        "pre_boxes": out.pre_boxes,
        "pre_logits": out.pre_logits,
        "boxes": out.boxes,
        "logits": out.logits,
        "corners": out.corners,
    }


def _loss(outputs: dict[str, torch.Tensor], on: tuple[str, ...]) -> torch.Tensor:
    """A fixed random weighting of the chosen outputs (the same weights for both decoders)."""
    gen = torch.Generator().manual_seed(2)
    total = torch.zeros(())
    for key in sorted(outputs):
        weights = torch.randn(outputs[key].shape, generator=gen)
        if key in on:
            total = total + (weights * outputs[key]).sum() + (outputs[key] ** 2).mean()
    return total


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: (p.grad if p.grad is not None else torch.zeros_like(p))
        for name, p in module.named_parameters()
        if p.requires_grad
    }


LOSSES = {
    "layer-boxes": ("boxes",),
    "distributions": ("corners",),
    "class-logits": ("logits",),
    "initial-box-head": ("pre_boxes", "pre_logits"),
    "everything": ("boxes", "corners", "logits", "pre_boxes", "pre_logits"),
}


@pytest.mark.parametrize("on", LOSSES.values(), ids=LOSSES.keys())
def test_gradients_match_the_official_decoder(on: tuple[str, ...]) -> None:
    """The same loss on the same weights gives the same gradient on every parameter and input."""
    theirs = _official_decoder()
    layers = copy.deepcopy(theirs)  # our loop runs D-FINE's layers, on separate copies of them
    head = _head_like(theirs)
    inputs = _inputs()
    x_theirs, x_ours = _leaves(inputs), _leaves(inputs)
    _loss(_run_official(theirs, x_theirs), on).backward()
    _loss(_run_ours(layers, head, x_ours), on).backward()

    official = _grads(theirs)
    # the copy's own box heads are unused (zero gradients): the head's take their names
    ours = _grads(layers) | _grads(head)
    assert set(ours) == set(official)
    for name, grad in official.items():
        torch.testing.assert_close(ours[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    for key in ("memory", "queries"):
        torch.testing.assert_close(x_ours[key].grad, x_theirs[key].grad, atol=1e-5, rtol=1e-4)
    # not vacuous: the loss reaches the box heads it should
    assert sum(float(g.abs().sum()) for g in official.values()) > 0


# --- each detach point on its own: a tiny head with stand-in layers ---------------------------------


class _Layers(nn.Module):
    """Stand-in decoder layers: each mixes its input hidden state with its reference boxes."""

    def __init__(self, cut_hidden: bool = False) -> None:
        super().__init__()
        self.mix = nn.ModuleList(nn.Linear(D + 4, D) for _ in range(LAYERS))
        self.cut_hidden = cut_hidden  # cut the layer's own hidden path, so only the head's paths remain
        self.outputs: list[torch.Tensor] = []

    def forward(self, i: int, hidden: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        source = hidden.detach() if self.cut_hidden and i > 0 else hidden
        out = torch.tanh(self.mix[i](torch.cat([source, boxes], dim=-1))) + source
        self.outputs.append(out)
        return out


def _tiny(cut_hidden: bool = False) -> tuple[FdrBoxHead, _Layers, FdrDecoded]:
    torch.manual_seed(3)
    head = FdrBoxHead(D, LAYERS, FdrSettings(bins=BINS, quality_hidden=16))  # random init: no zero layers
    layers = _Layers(cut_hidden)
    queries = torch.randn(2, QUERIES, D)
    reference = torch.rand(2, QUERIES, 4) * 0.4 + 0.3
    return head, layers, fdr_decode(head, queries, reference, layers, None, training=True)


def _norm(module: nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_initial_box_head_is_trained_by_its_own_loss_only() -> None:
    """Later layers measure from the initial box detached; the head learns from ``pre_boxes``."""
    head, _, out = _tiny()
    (out.boxes.sum() + (out.corners**2).mean()).backward()
    assert _norm(head.pre_bbox_head) == 0.0  # the layers' box losses never reach it
    assert not out.initial.requires_grad
    assert _norm(head.bbox_embed[0]) > 0  # ...while they do train the box heads

    head, _, out = _tiny()
    assert out.pre_boxes.requires_grad
    (out.pre_boxes**2).sum().backward()
    assert _norm(head.pre_bbox_head) > 0


def test_previous_hidden_state_enters_the_next_box_head_detached() -> None:
    """Layer 1's distributions reach layer 0's hidden state through the residual logits only."""
    _, layers, out = _tiny(cut_hidden=True)
    hidden0 = layers.outputs[0]
    weights = torch.randn(out.corners[:, 1].shape, generator=torch.Generator().manual_seed(4))
    (got,) = torch.autograd.grad((weights * out.corners[:, 1]).sum(), hidden0, retain_graph=True)
    # corners_1 = box_head_1(hidden_1 + hidden_0.detach()) + corners_0: d/d corners_0 is the identity
    (want,) = torch.autograd.grad((weights * out.corners[:, 0]).sum(), hidden0)
    assert float(want.abs().sum()) > 0
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_residual_logits_carry_later_losses_to_earlier_box_heads() -> None:
    """A loss on the last layer's boxes trains every layer's box head (``pred_corners_undetach``)."""
    head, _, out = _tiny()
    out.boxes[:, -1].sum().backward()
    for i in range(LAYERS):
        assert _norm(head.bbox_embed[i]) > 0, f"bbox_embed[{i}] gets no gradient from the last layer"


def test_next_layers_reference_box_is_detached() -> None:
    """Boxes steer the next layer (its reference) but are not trained through it (``ref_points_detach``)."""
    head, layers, out = _tiny()
    out.hidden_states[:, -1].pow(2).sum().backward()
    assert _norm(layers) > 0
    assert _norm(head.bbox_embed) == 0.0
    assert _norm(head.pre_bbox_head) == 0.0
