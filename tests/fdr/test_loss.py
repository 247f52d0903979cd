"""GO-LSD's terms against transformers' D-FINE loss on the same tensors; the arms' loss sets."""

from __future__ import annotations

import pytest
import torch

from dfine_bench.fdr.head import FdrSettings
from dfine_bench.fdr.loss import local_losses, loss_inputs, rtdetr_criterion

BINS, B, Q, C, L = 32, 2, 9, 4, 3


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {
            "class_labels": torch.tensor([0, 3]),
            "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.2, 0.3, 0.1, 0.2]]),
        },
        {"class_labels": torch.tensor([1]), "boxes": torch.tensor([[0.6, 0.4, 0.5, 0.3]])},
    ]


def _layer_outputs(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.rand(B, Q, 4, generator=gen) * 0.4 + 0.3
    return {
        "logits": torch.randn(B, Q, C, generator=gen),
        "pred_boxes": boxes,
        "pred_corners": torch.randn(B, Q, 4 * (BINS + 1), generator=gen, requires_grad=True),
        "ref_points": boxes + torch.randn(B, Q, 4, generator=gen) * 0.02,
        "teacher_corners": torch.randn(B, Q, 4 * (BINS + 1), generator=gen),
        "teacher_logits": torch.randn(B, Q, C, generator=gen),
    }


def _dfine_loss():
    from transformers import DFineConfig
    from transformers.loss.loss_d_fine import DFineLoss

    return DFineLoss(DFineConfig(num_labels=C))


def test_fgl_and_ddf_match_transformers_dfine_loss() -> None:
    outputs = _layer_outputs(0)
    targets = _targets()
    indices = [(torch.tensor([4, 1]), torch.tensor([0, 1])), (torch.tensor([7]), torch.tensor([0]))]
    theirs = _dfine_loss().loss_local(outputs, targets, indices, num_boxes=3.0)
    ours = local_losses(outputs, targets, indices, 3.0, BINS, 4.0, torch.tensor([0.5]))
    assert set(ours) == {"loss_fgl", "loss_ddf"}
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-5, rtol=1e-5)
        assert float(ours[key].detach()) > 0
    # gradients flow into the student's distributions only
    (ours["loss_fgl"] + ours["loss_ddf"]).backward()
    assert outputs["pred_corners"].grad is not None and float(outputs["pred_corners"].grad.abs().sum()) > 0


def test_the_teacher_has_no_distillation_loss() -> None:
    outputs = _layer_outputs(1)
    outputs["teacher_corners"] = outputs["pred_corners"].detach().clone()
    indices = [(torch.tensor([0, 2]), torch.tensor([1, 0])), (torch.tensor([3]), torch.tensor([0]))]
    ours = local_losses(outputs, _targets(), indices, 3.0, BINS, 4.0, torch.tensor([0.5]))
    assert float(ours["loss_ddf"].detach()) == 0.0
    assert float(ours["loss_fgl"].detach()) > 0  # FGL still trains the final layer


def _decoded(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    initial = torch.rand(B, Q, 4, generator=gen) * 0.4 + 0.3
    return {
        "logits": torch.randn(B, L, Q, C, generator=gen),
        "boxes": initial.unsqueeze(1) + torch.randn(B, L, Q, 4, generator=gen) * 0.01,
        "corners": torch.randn(B, L, Q, 4 * (BINS + 1), generator=gen),
        "initial": initial,
        "pre_logits": torch.randn(B, Q, C, generator=gen),
        "pre_boxes": initial,
    }


def _rtdetr_config():
    from transformers import RTDetrConfig

    return RTDetrConfig(num_labels=C)


@pytest.mark.parametrize("go_lsd", [False, True])
def test_criterion_terms_per_arm(go_lsd: bool) -> None:
    """+FDR keeps RT-DETR's own loss terms; +GO-LSD adds FGL on every layer (the final one included)
    and DDF on every layer but the final one, the teacher."""
    d = _decoded(2)
    inputs = loss_inputs(
        d["logits"],
        d["boxes"],
        d["corners"],
        d["initial"],
        d["pre_logits"],
        d["pre_boxes"],
        enc=[(d["pre_logits"], d["pre_boxes"])],
    )
    losses = rtdetr_criterion(_rtdetr_config(), FdrSettings(), go_lsd)(inputs, _targets())
    base = {"loss_vfl", "loss_bbox", "loss_giou"}
    # aux: layers 0..L-2, then the initial box head, then the encoder proposals
    expected = base | {f"{k}_aux_{i}" for k in base for i in range(L + 1)}
    if go_lsd:
        expected |= {"loss_fgl", "loss_ddf"} | {
            f"loss_{k}_aux_{i}" for k in ("fgl", "ddf") for i in range(L - 1)
        }
        assert float(losses["loss_ddf"]) == 0.0 and float(losses["loss_ddf_aux_0"]) > 0
        assert float(losses["loss_fgl"]) > 0
    assert set(losses) == expected


@pytest.mark.parametrize("go_lsd,union", [(False, True), (True, False)])
def test_main_terms_equal_rtdetrs_own_loss_on_the_final_layer(go_lsd: bool, union: bool) -> None:
    """Only the head changes: on the same final-layer tensors the VFL/L1/GIoU terms are RT-DETR's
    (+FDR; and +GO-LSD with per-output matching: union matching changes the box terms by design)."""
    from transformers.loss.loss_rt_detr import RTDetrLoss

    d = _decoded(3)
    inputs = loss_inputs(d["logits"], d["boxes"], d["corners"], d["initial"], None, d["pre_boxes"])
    config = _rtdetr_config()
    config.go_lsd_union_matching = union
    ours = rtdetr_criterion(config, FdrSettings(), go_lsd)(inputs, _targets())
    theirs = RTDetrLoss(_rtdetr_config())(
        {"logits": d["logits"][:, -1], "pred_boxes": d["boxes"][:, -1]}, _targets()
    )
    for key in ("loss_vfl", "loss_bbox", "loss_giou"):
        torch.testing.assert_close(ours[key], theirs[key])
