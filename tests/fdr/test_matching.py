"""GO-LSD trained as the official ``dfine_criterion.py`` trains it (issue 21, D1-D3).

D1: the box terms and FGL/DDF of every output use the union of all outputs' matches
(``_get_go_indices``), normalised by the union's size (``num_boxes_go``); classification keeps
each output's own match. D2: DDF on denoising queries weighs its matched/unmatched groups with the
regular layers' counts. D3: boxes reach the loss unclamped. Each is checked on hand-made matchings
where one output's own match differs from the union.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfine_bench.fdr.head import FdrSettings
from dfine_bench.fdr.loss import (
    WEIGHT_DDF,
    WEIGHT_FGL,
    ddf_counts,
    ddf_loss,
    local_losses,
    loss_inputs,
    rtdetr_criterion,
)
from dfine_bench.fdr.matching import union_indices, union_size

BINS, B, Q, C, L = 32, 2, 6, 4, 3


def _pairs(indices):
    return [sorted(zip(r.tolist(), c.tolist())) for r, c in indices]


def _idx(rows, cols):
    return torch.tensor(rows, dtype=torch.int64), torch.tensor(cols, dtype=torch.int64)


def test_union_keeps_each_query_once_with_the_pairing_most_outputs_chose() -> None:
    # image 0: q0->g0 by 2 outputs and q0->g1 by 1; q2->g1 by 2; q1->g1 by 1 (a gt may get 2 queries)
    main = [_idx([0, 1], [0, 1]), _idx([3], [0])]
    others = [
        [_idx([0, 2], [0, 1]), _idx([3], [0])],
        [_idx([0, 2], [1, 1]), _idx([4], [0])],
    ]
    union = union_indices(main, others)
    assert _pairs(union) == [[(0, 0), (1, 1), (2, 1)], [(3, 0), (4, 0)]]
    assert union_size(union) == 5.0
    # a tie (q0->g0 once, q0->g1 once) goes to the lexicographically first pair, as the official sort
    tie = union_indices([_idx([0], [1])], [[_idx([0], [0])]])
    assert _pairs(tie) == [[(0, 0)]]
    assert union_size([_idx([], []), _idx([], [])]) == 1.0


def _decoded(seed: int, boxes_scale: float = 0.01) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    initial = torch.rand(B, Q, 4, generator=gen) * 0.3 + 0.35
    return {
        "logits": torch.randn(B, L, Q, C, generator=gen),
        "boxes": initial.unsqueeze(1) + torch.randn(B, L, Q, 4, generator=gen) * boxes_scale,
        "corners": torch.randn(B, L, Q, 4 * (BINS + 1), generator=gen),
        "initial": initial,
        "pre_logits": torch.randn(B, Q, C, generator=gen),
        "pre_boxes": initial.clone(),
    }


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {
            "class_labels": torch.tensor([0, 3]),
            "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.4, 0.45, 0.2, 0.2]]),
        },
        {"class_labels": torch.tensor([1]), "boxes": torch.tensor([[0.6, 0.5, 0.25, 0.3]])},
    ]


class _ScriptedMatcher(nn.Module):
    """Returns a fixed matching per output, in the order the criterion asks (main, then aux...)."""

    def __init__(self, script: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        super().__init__()
        self.script = script
        self.calls = 0

    def forward(self, outputs, targets):
        indices = self.script[self.calls % len(self.script)]
        self.calls += 1
        return indices


# The final layer and aux layer 0 match image 0's object 1 to query 1; aux layer 1 and the initial
# box head match it to query 4, and image 1's object to query 5 instead of 2. The union keeps every
# matched query: q0->g0, q1->g1, q4->g1 and q2->g0, q5->g0 (5 pairs for 3 objects). Aux order as
# the criterion asks: layer 0, layer 1, the initial box head.
MAIN = [_idx([0, 1], [0, 1]), _idx([2], [0])]
AUX0 = [_idx([0, 1], [0, 1]), _idx([2], [0])]
AUX1 = [_idx([0, 4], [0, 1]), _idx([2], [0])]
PRE = [_idx([0, 4], [0, 1]), _idx([5], [0])]


def _criterion(union: bool = True):
    from transformers import RTDetrConfig

    config = RTDetrConfig(num_labels=C, decoder_layers=L)
    config.go_lsd_union_matching = union
    criterion = rtdetr_criterion(config, FdrSettings(), go_lsd=True)
    criterion._modules["matcher"] = _ScriptedMatcher([MAIN, AUX0, AUX1, PRE])
    return criterion


def _l1(boxes: torch.Tensor, indices, targets, normaliser: float) -> torch.Tensor:
    total = sum(
        (boxes[i][rows] - t["boxes"][cols]).abs().sum()
        for i, ((rows, cols), t) in enumerate(zip(indices, targets))
    )
    return total / normaliser


def test_box_terms_and_fgl_use_the_union_and_its_size_classification_its_own_match() -> None:
    d = _decoded(0)
    inputs = loss_inputs(d["logits"], d["boxes"], d["corners"], d["initial"], d["pre_logits"], d["pre_boxes"])
    targets = _targets()
    losses = _criterion()(inputs, targets)
    union = union_indices(MAIN, [AUX0, AUX1, PRE])
    assert _pairs(union) == [[(0, 0), (1, 1), (4, 1)], [(2, 0), (5, 0)]]
    n_go = union_size(union)  # 5 matched queries, not the 3 objects
    weight_bbox = 5.0  # RTDetrConfig.weight_loss_bbox
    # aux layer 0's own match is MAIN's, yet its box loss is taken over the union
    expected = _l1(d["boxes"][:, 0], union, targets, n_go) * weight_bbox
    torch.testing.assert_close(losses["loss_bbox_aux_0"], expected)
    torch.testing.assert_close(
        losses["loss_bbox"], _l1(d["boxes"][:, -1], union, targets, n_go) * weight_bbox
    )
    # FGL of aux layer 1 over the union, normalised by its size
    layer1 = inputs["auxiliary_outputs"][1]
    fgl = local_losses(layer1, targets, union, n_go, BINS, 4.0, torch.tensor([0.5]))["loss_fgl"]
    torch.testing.assert_close(losses["loss_fgl_aux_1"], fgl * WEIGHT_FGL)
    # the classification term keeps each output's own matching and the object count
    per_output = _criterion(union=False)(inputs, targets)
    for key in ("loss_vfl", "loss_vfl_aux_0", "loss_vfl_aux_1", "loss_vfl_aux_2"):
        torch.testing.assert_close(losses[key], per_output[key])
    assert not torch.allclose(losses["loss_bbox_aux_0"], per_output["loss_bbox_aux_0"])


def _dn_inputs(seed: int) -> tuple[dict, list[dict[str, torch.Tensor]]]:
    """Two denoising queries per object (one group) ahead of Q regular queries."""
    targets = _targets()
    gen = torch.Generator().manual_seed(seed)
    num_dn = 4
    total = num_dn + Q
    initial = torch.rand(B, total, 4, generator=gen) * 0.3 + 0.35
    meta = {
        "dn_positive_idx": [torch.tensor([0, 1]), torch.tensor([0])],
        "dn_num_group": 1,
        "dn_num_split": [num_dn, Q],
    }
    inputs = loss_inputs(
        torch.randn(B, L, total, C, generator=gen),
        initial.unsqueeze(1) + torch.randn(B, L, total, 4, generator=gen) * 0.01,
        torch.randn(B, L, total, 4 * (BINS + 1), generator=gen),
        initial,
        torch.randn(B, total, C, generator=gen),
        initial.clone(),
        dn_meta=meta,
    )
    return inputs, targets


def test_ddf_on_denoising_queries_weighs_its_groups_with_the_regular_layers_counts() -> None:
    inputs, targets = _dn_inputs(1)
    losses = _criterion()(inputs, targets)
    union = union_indices(MAIN, [AUX0, AUX1, PRE])
    batch = torch.cat([torch.full_like(r, i) for i, (r, _) in enumerate(union)])
    regular = ddf_counts(
        inputs["auxiliary_outputs"][0]["pred_corners"], (batch, torch.cat([r for r, _ in union]))
    )
    dn_layer = inputs["dn_auxiliary_outputs"][0]
    dn_idx = [_idx([0, 1], [0, 1]), _idx([0], [0])]
    dn_batch = torch.cat([torch.full_like(r, i) for i, (r, _) in enumerate(dn_idx)])
    dn_matched = (dn_batch, torch.cat([r for r, _ in dn_idx]))
    fgl_ious = local_losses(dn_layer, targets, dn_idx, 3.0, BINS, 4.0, torch.tensor([0.5]))
    assert set(fgl_ious) == {"loss_fgl", "loss_ddf"}
    from dfine_bench.fdr.loss import paired_iou

    ious = paired_iou(
        dn_layer["pred_boxes"][dn_matched].detach(),
        torch.cat([t["boxes"][c] for t, (_, c) in zip(targets, dn_idx)]),
    )
    args = (
        dn_layer["pred_corners"],
        dn_layer["teacher_corners"],
        dn_layer["teacher_logits"],
        dn_matched,
        ious,
        BINS,
    )
    official = ddf_loss(*args, counts=regular) * WEIGHT_DDF
    own = ddf_loss(*args) * WEIGHT_DDF
    torch.testing.assert_close(losses["loss_ddf_dn_0"], official)
    assert not torch.allclose(official, own)  # the two conventions differ on this input


def test_boxes_reach_the_loss_unclamped() -> None:
    d = _decoded(2)
    d["boxes"][0, :, 0] = torch.tensor([1.15, 0.5, 0.2, 0.3])  # query 0 of image 0 pokes out of the image
    inputs = loss_inputs(d["logits"], d["boxes"], d["corners"], d["initial"], d["pre_logits"], d["pre_boxes"])
    assert float(inputs["pred_boxes"][0, 0, 0]) == pytest.approx(1.15)
    assert float(inputs["auxiliary_outputs"][0]["pred_boxes"][0, 0, 0]) == pytest.approx(1.15)
    targets = _targets()
    losses = _criterion()(inputs, targets)
    union = union_indices(MAIN, [AUX0, AUX1, PRE])
    torch.testing.assert_close(
        losses["loss_bbox"], _l1(d["boxes"][:, -1], union, targets, union_size(union)) * 5.0
    )
