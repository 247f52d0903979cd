"""The FDR head and decoding loop reproduce transformers' D-FINE decoder on D-FINE's own layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfine_bench.errors import ConfigError
from dfine_bench.fdr.head import FdrBoxHead, FdrSettings, distance_to_boxes, fdr_decode, weighting_function

D, LAYERS, CLASSES, QUERIES = 64, 3, 5, 7
SHAPES = [(8, 8), (4, 4), (2, 2)]


def _dfine_decoder(seed: int):
    from transformers import DFineConfig
    from transformers.models.d_fine.modeling_d_fine import DFineDecoder, DFineMLP

    torch.manual_seed(seed)
    config = DFineConfig(
        d_model=D,
        decoder_layers=LAYERS,
        decoder_attention_heads=4,
        decoder_ffn_dim=128,
        num_labels=CLASSES,
        decoder_n_points=[2, 2, 2],
        decoder_in_channels=[D] * 3,
        encoder_hidden_dim=D,
    )
    decoder = DFineDecoder(config)
    # as DFineForObjectDetection attaches its heads
    decoder.class_embed = nn.ModuleList(nn.Linear(D, CLASSES) for _ in range(LAYERS))
    decoder.bbox_embed = nn.ModuleList(DFineMLP(D, D, 4 * 33, 3) for _ in range(LAYERS))
    with torch.no_grad():  # D-FINE zero-inits the last box/LQE layers: perturb so every term is exercised
        for p in decoder.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return decoder


def _our_head(decoder) -> FdrBoxHead:
    head = FdrBoxHead(D, LAYERS, FdrSettings())
    wanted = ("pre_bbox_head.", "bbox_embed.", "lqe_layers.")
    state = {
        k: v for k, v in decoder.state_dict().items() if k.startswith(wanted) or k in ("up", "reg_scale")
    }
    head.load_state_dict(state, strict=True)  # the same tensors, one to one
    return head


@pytest.mark.parametrize("training", [False, True])
def test_fdr_decode_matches_transformers_dfine_decoder(training: bool) -> None:
    decoder = _dfine_decoder(0).train(training)
    head = _our_head(decoder)
    gen = torch.Generator().manual_seed(1)
    tokens = sum(h * w for h, w in SHAPES)
    memory = torch.randn(2, tokens, D, generator=gen)
    reference = torch.randn(2, QUERIES, 4, generator=gen)  # logit space, as D-FINE's query selection gives
    queries = torch.randn(2, QUERIES, D, generator=gen)
    shapes = torch.tensor(SHAPES)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    theirs = decoder(
        encoder_hidden_states=memory,
        reference_points=reference,
        inputs_embeds=queries,
        spatial_shapes=shapes,
        spatial_shapes_list=SHAPES,
        level_start_index=start,
    )

    def run_layer(i: int, hidden: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        position = decoder.query_pos_head(boxes).clamp(min=-10, max=10)  # D-FINE's positional rule
        return decoder.layers[i](
            hidden,
            position_embeddings=position,
            reference_points=boxes.unsqueeze(2),
            spatial_shapes=shapes,
            spatial_shapes_list=SHAPES,
            encoder_hidden_states=memory,
        )

    ours = fdr_decode(head, queries, reference.sigmoid(), run_layer, decoder.class_embed, training)
    assert ours.logits is not None
    if training:  # transformers stacks the initial box head's output first, then every layer
        torch.testing.assert_close(ours.boxes, theirs.intermediate_reference_points[:, 1:], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            ours.pre_boxes, theirs.intermediate_reference_points[:, 0], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(ours.corners, theirs.intermediate_predicted_corners, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.logits, theirs.intermediate_logits[:, 1:], atol=1e-5, rtol=0)
        assert ours.pre_logits is not None
        torch.testing.assert_close(ours.pre_logits, theirs.intermediate_logits[:, 0], atol=1e-5, rtol=0)
    else:  # inference: the last layer only (with its quality term)
        torch.testing.assert_close(
            ours.boxes[:, -1], theirs.intermediate_reference_points[:, -1], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(ours.logits[:, -1], theirs.intermediate_logits[:, -1], atol=1e-5, rtol=0)
    # the comparison is not vacuous: the layers moved the boxes away from the initial box
    assert float((ours.boxes[:, -1] - ours.initial).abs().max().detach()) > 1e-3


def test_weighting_function_is_dfines_with_the_papers_a_and_c() -> None:
    from transformers.loss.loss_d_fine import weighting_function as hf_weighting

    settings = FdrSettings()
    up, scale = torch.tensor([settings.a]), torch.tensor([settings.reg_scale])
    ours = weighting_function(settings.bins, up, scale)
    torch.testing.assert_close(ours, hf_weighting(32, up, 4.0))
    assert ours.shape == (33,) and float(ours[16]) == 0.0
    # in box sizes: c * W spans +-2a, finest steps next to the initial edge
    assert float(ours[-1] * settings.c) == pytest.approx(2 * settings.a)
    steps = ours.diff()
    assert float(steps[16]) < float(steps[20]) < float(steps[30])


def test_zero_offsets_give_the_initial_box() -> None:
    initial = torch.tensor([[[0.5, 0.4, 0.2, 0.3]]])
    boxes = distance_to_boxes(initial, torch.zeros(1, 1, 4), torch.tensor([4.0]))
    torch.testing.assert_close(boxes, initial)


def test_fresh_head_predicts_the_initial_box() -> None:
    head = FdrBoxHead(D, 2, FdrSettings())
    head.reset_fdr_parameters()
    hidden = torch.randn(1, 3, D)
    ref = torch.rand(1, 3, 4) * 0.5 + 0.25

    out = fdr_decode(head, hidden, ref, lambda i, h, b: h, None, training=False)
    torch.testing.assert_close(out.boxes[:, -1], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("settings", "field"),
    [(FdrSettings(bins=7), "bins"), (FdrSettings(a=0), "a"), (FdrSettings(quality_topk=40), "quality_topk")],
)
def test_bad_settings_name_the_field(settings: FdrSettings, field: str) -> None:
    with pytest.raises(ConfigError, match=f"fdr.{field}"):
        settings.validate()
