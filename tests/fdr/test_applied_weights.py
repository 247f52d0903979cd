"""Training guards for GO-LSD's terms: the weights and the temperature the criterion applies, and
the teacher kept out of the graph.

``test_loss.py`` checks ``local_losses`` against transformers' ``DFineLoss`` when both are called
with the same arguments; that cannot see what the *criterion* passes (its temperature, its weight
dict). Here DDF is computed by hand as the official ``dfine_criterion.py`` ``loss_local`` writes it
(``T = 5``: ``KL(softmax(teacher / T) || softmax(pred / T)) * T^2``, matched edges weighted by their
IoU, unmatched ones by the teacher's confidence, the two means combined with sqrt-count weights),
and the criterion's loss dict must equal it times D-FINE's weights (``loss_fgl: 0.15``,
``loss_ddf: 1.5``, the official ``dfine_hgnetv2.yml``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dfine_bench.fdr.head import FdrSettings
from dfine_bench.fdr.loss import (
    ddf_loss,
    deformable_criterion,
    local_losses,
    loss_inputs,
    rtdetr_criterion,
    weighted_total,
)

BINS, B, Q, C, L = 8, 2, 5, 3, 3
PAPER_T, PAPER_FGL, PAPER_DDF = 5.0, 0.15, 1.5  # Table 4's T; D-FINE's weight_dict
SETTINGS = FdrSettings(bins=BINS)
#: which query sits on which target, image by image: every output's matcher must pick these
MATCHED = [(torch.tensor([3, 0]), torch.tensor([0, 1])), (torch.tensor([2]), torch.tensor([0]))]


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {
            "class_labels": torch.tensor([0, 2]),
            "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]]),
        },
        {"class_labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.3]])},
    ]


def _decoded(seed: int = 0, grad: bool = False) -> dict[str, torch.Tensor]:
    """Decoder outputs on which every layer's match is unambiguous (``MATCHED``): the matched
    queries sit close to their targets with a confident right class, the others far away."""
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([0.9, 0.1, 0.05, 0.05]).repeat(B, Q, 1)
    logits = torch.full((B, Q, C), -4.0) + torch.randn(B, Q, C, generator=gen) * 0.5
    for b, (src, tgt) in enumerate(MATCHED):
        target = _targets()[b]
        boxes[b, src] = target["boxes"][tgt] + 0.02  # IoU below one: the IoU weight is exercised
        logits[b, src, target["class_labels"][tgt]] = 4.0
    corners = torch.randn(B, L, Q, 4 * (BINS + 1), generator=gen) * 2
    return {
        "logits": logits.unsqueeze(1).repeat(1, L, 1, 1),
        "boxes": boxes.unsqueeze(1).repeat(1, L, 1, 1),
        "corners": corners.requires_grad_(grad),
        "initial": boxes + 0.01,
        "pre_logits": logits,
        "pre_boxes": boxes,
    }


def _inputs(d: dict[str, torch.Tensor]) -> dict:
    return loss_inputs(d["logits"], d["boxes"], d["corners"], d["initial"], d["pre_logits"], d["pre_boxes"])


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    (ax, ay, aw, ah), (bx, by, bw, bh) = a.tolist(), b.tolist()
    w = max(0.0, min(ax + aw / 2, bx + bw / 2) - max(ax - aw / 2, bx - bw / 2))
    h = max(0.0, min(ay + ah / 2, by + bh / 2) - max(ay - ah / 2, by - bh / 2))
    return w * h / (aw * ah + bw * bh - w * h)


def _ddf_by_hand(student: torch.Tensor, d: dict[str, torch.Tensor], temperature: float) -> float:
    """The official DDF of one layer's (B, Q, 4(N+1)) logits, edge by edge."""
    teacher, teacher_logits = d["corners"][:, -1].detach(), d["logits"][:, -1]
    matched = {
        (b, int(q)): _iou(d["boxes"][b, -1, q], _targets()[b]["boxes"][t])
        for b, (src, tgt) in enumerate(MATCHED)
        for q, t in zip(src, tgt)
    }
    pos, neg = [], []
    for b in range(B):
        for q in range(Q):
            weight = matched.get((b, q), float(teacher_logits[b, q].sigmoid().max()))
            for e in range(4):
                edge = slice(e * (BINS + 1), (e + 1) * (BINS + 1))
                p = F.softmax(teacher[b, q, edge] / temperature, dim=0)
                log_q = F.log_softmax(student[b, q, edge].detach() / temperature, dim=0)
                kl = float((p * (p.log() - log_q)).sum())
                (pos if (b, q) in matched else neg).append(weight * temperature**2 * kl)
    n_pos, n_neg = (len(pos) / B) ** 0.5, (len(neg) / B) ** 0.5
    return (sum(pos) / len(pos) * n_pos + sum(neg) / len(neg) * n_neg) / (n_pos + n_neg)


def _rtdetr_config(**extra: object):
    from transformers import RTDetrConfig

    config = RTDetrConfig(num_labels=C)
    for key, value in extra.items():
        setattr(config, key, value)
    return config


def test_the_hand_ddf_depends_on_the_temperature() -> None:
    """What the next tests rely on: a temperature other than 5 gives a visibly different DDF."""
    d = _decoded()
    at_five = _ddf_by_hand(d["corners"][:, 0], d, PAPER_T)
    for other in (1.0, 4.0, 6.0):
        assert abs(_ddf_by_hand(d["corners"][:, 0], d, other) - at_five) > 1e-3 * at_five
    # and the module's own function, at T = 5, is the hand computation
    idx = (torch.tensor([0, 0, 1]), torch.tensor([3, 0, 2]))
    ious = torch.tensor(
        [
            _iou(d["boxes"][b, -1, q], _targets()[b]["boxes"][t])
            for b, q, t in [(0, 3, 0), (0, 0, 1), (1, 2, 0)]
        ]
    )
    ours = ddf_loss(d["corners"][:, 0], d["corners"][:, -1], d["logits"][:, -1], idx, ious, BINS, PAPER_T)
    assert float(ours) == pytest.approx(at_five, rel=1e-5)


@pytest.mark.parametrize("union", [True, False], ids=["union-matching", "per-output-matching"])
def test_rtdetr_criterion_applies_t5_and_the_papers_weights(union: bool) -> None:
    d = _decoded()
    criterion = rtdetr_criterion(_rtdetr_config(go_lsd_union_matching=union), SETTINGS, True)
    losses = criterion(_inputs(d), _targets())
    num_boxes = 3.0
    for layer in range(L - 1):  # the auxiliary layers: students of the final layer
        student = d["corners"][:, layer]
        raw = local_losses(
            {
                "pred_corners": student,
                "ref_points": d["initial"],
                "pred_boxes": d["boxes"][:, layer],
                "teacher_corners": d["corners"][:, -1],
                "teacher_logits": d["logits"][:, -1],
            },
            _targets(),
            MATCHED,
            num_boxes,
            BINS,
            SETTINGS.reg_scale,
            torch.tensor([SETTINGS.a]),
        )
        assert float(raw["loss_fgl"]) > 0
        assert float(losses[f"loss_fgl_aux_{layer}"]) == pytest.approx(
            PAPER_FGL * float(raw["loss_fgl"]), rel=1e-6
        )
        ddf = _ddf_by_hand(student, d, PAPER_T)
        assert float(losses[f"loss_ddf_aux_{layer}"]) == pytest.approx(PAPER_DDF * ddf, rel=1e-5)
    # the final layer, the teacher: FGL only
    assert float(losses["loss_ddf"]) == 0.0
    assert float(losses["loss_fgl"]) > 0


def test_rtdetr_criterion_takes_the_weights_a_config_gives() -> None:
    d = _decoded()
    plain = rtdetr_criterion(_rtdetr_config(), SETTINGS, True)(_inputs(d), _targets())
    config = _rtdetr_config(weight_loss_fgl=0.3, weight_loss_ddf=2.0)
    custom = rtdetr_criterion(config, SETTINGS, True)(_inputs(d), _targets())
    for key, ratio in (("loss_fgl_aux_0", 0.3 / PAPER_FGL), ("loss_ddf_aux_0", 2.0 / PAPER_DDF)):
        assert float(custom[key]) == pytest.approx(ratio * float(plain[key]), rel=1e-6)


def test_deformable_criterion_weights_its_raw_terms_as_dfine() -> None:
    from transformers import DeformableDetrConfig

    d = _decoded()
    criterion = deformable_criterion(DeformableDetrConfig(num_labels=C), SETTINGS, True)
    losses = criterion(_inputs(d), _targets())  # raw terms: weighted by weighted_total
    ddf = _ddf_by_hand(d["corners"][:, 0], d, PAPER_T)
    assert float(losses["loss_ddf_0"]) == pytest.approx(ddf, rel=1e-5)
    local = {k: v for k, v in losses.items() if k.startswith(("loss_fgl", "loss_ddf"))}
    fgl = sum(float(v) for k, v in local.items() if k.startswith("loss_fgl"))
    ddf_all = sum(float(v) for k, v in local.items() if k.startswith("loss_ddf"))
    assert fgl > 0 and ddf_all > 0
    total = float(weighted_total(local, criterion.weight_dict))
    assert total == pytest.approx(PAPER_FGL * fgl + PAPER_DDF * ddf_all, rel=1e-6)


# --- the teacher ------------------------------------------------------------------------------------


def test_distillation_never_trains_the_teacher() -> None:
    """DDF's gradient reaches the student's distributions, never the teacher's distributions or
    logits (the official ``target_corners.detach()`` and detached weights)."""
    d = _decoded()
    student = d["corners"][:, 0].clone().requires_grad_(True)
    teacher = d["corners"][:, -1].clone().requires_grad_(True)
    teacher_logits = d["logits"][:, -1].clone().requires_grad_(True)
    idx = (torch.tensor([0, 0, 1]), torch.tensor([3, 0, 2]))
    loss = ddf_loss(student, teacher, teacher_logits, idx, torch.tensor([0.8, 0.7, 0.9]), BINS, PAPER_T)
    g_student, g_teacher, g_logits = torch.autograd.grad(
        loss, [student, teacher, teacher_logits], allow_unused=True
    )
    assert g_student is not None and float(g_student.abs().sum()) > 0
    assert g_teacher is None
    assert g_logits is None


def test_criterions_distillation_terms_leave_the_final_layer_alone() -> None:
    """Through the whole criterion: the DDF terms train layers 0..L-2 and not the final layer."""
    d = _decoded(grad=True)
    losses = rtdetr_criterion(_rtdetr_config(), SETTINGS, True)(_inputs(d), _targets())
    ddf = sum(v for k, v in losses.items() if k.startswith("loss_ddf"))
    assert isinstance(ddf, torch.Tensor)
    (grad,) = torch.autograd.grad(ddf, d["corners"])
    for layer in range(L - 1):
        assert float(grad[:, layer].abs().sum()) > 0
    assert float(grad[:, -1].abs().sum()) == 0.0
