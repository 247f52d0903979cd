"""GO-LSD as a loss, added to a DETR baseline's own criterion.

D-FINE (Sec. 3.2-3.3) trains FDR distributions with two terms on top of the baseline's
classification and box losses:

* FGL (fine-grained localization): for matched queries, cross-entropy of each edge distribution
  against the ground-truth offset split over its two neighbouring bins of W(n) (linear
  interpolation weights), weighted by the box IoU; on every layer's distributions (the final
  layer's included, measured from the initial box);
* DDF (decoupled distillation focal): KL divergence (temperature T = 5) from the final layer's
  distributions (the teacher, detached) to every earlier layer's, matched queries weighted by
  their IoU and unmatched ones by the teacher's confidence, the two groups averaged separately
  and combined with sqrt-count weights.

The matcher, VFL/focal and L1+GIoU terms are transformers' (``RTDetrLoss`` / the
``DeformableDetrImageLoss``), unchanged: the "+FDR" arm differs from its baseline only in the
head. FGL/DDF are computed here (``local_losses``) and checked against transformers'
``DFineLoss.loss_local`` on the same tensors (``tests/fdr/test_loss.py``); the target
discretisation reuses transformers' ``bbox2distance``.

Layout, as the official D-FINE ``_set_aux_loss2`` (not transformers' ``DFineForObjectDetectionLoss``,
whose auxiliary entries pair layer ``i``'s distributions with layer ``i - 1``'s logits and boxes,
and which computes no FGL on the final layer): the final layer is the main output and the
teacher; layers ``0..L-2`` are auxiliary outputs; then the initial box head, then the encoder's
top-k proposals; denoising queries get the same per-layer terms with their own teacher.

Training follows the official ``dfine_criterion.py`` in the three places where transformers'
criteria differ from it:

* **union matching** (GO-LSD's "global optimal" matching, ``fdr/matching.py``): with GO-LSD on,
  the box terms (L1 + GIoU) and FGL/DDF of every output use the union of all outputs' matches,
  normalised by the union's size; classification keeps each output's own matching
  (``config.go_lsd_union_matching``, default on; off gives per-output matching for comparison);
* DDF on denoising queries weighs matched and unmatched queries with the *non-denoising*
  outputs' counts (the official code keeps ``num_pos``/``num_neg`` from the last regular layer);
* boxes reach the loss unclamped (the official decoder never clamps them to [0, 1]).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dfine_bench.fdr.head import FdrSettings
from dfine_bench.fdr.matching import UNION_LOSSES, union_indices, union_size

#: D-FINE's default weights of the GO-LSD terms (DFineConfig: weight_loss_fgl, weight_loss_ddf)
#: and the distillation temperature (the paper's Table 4: T = 5).
WEIGHT_FGL = 0.15
WEIGHT_DDF = 1.5
TEMPERATURE = 5.0

Target = Mapping[str, torch.Tensor]
Indices = Sequence[tuple[torch.Tensor, torch.Tensor]]


def _cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of box ``a[i]`` with ``b[i]`` (cxcywh), for each i."""
    a, b = _cxcywh_to_xyxy(a), _cxcywh_to_xyxy(b)
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area_a + area_b - inter)


def fgl_loss(
    corners: torch.Tensor,
    ref_points: torch.Tensor,
    pred_boxes: torch.Tensor,
    target_boxes: torch.Tensor,
    num_boxes: float,
    bins: int,
    reg_scale: float,
    up: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FGL of matched queries: (loss, their IoUs). ``corners``: (M, 4(N+1)); boxes (M, 4) cxcywh."""
    from transformers.loss.loss_d_fine import bbox2distance

    with torch.no_grad():
        target, weight_right, weight_left = bbox2distance(
            ref_points.detach(), _cxcywh_to_xyxy(target_boxes), bins, reg_scale, up
        )
    ious = paired_iou(pred_boxes.detach(), target_boxes)
    logits = corners.reshape(-1, bins + 1)
    left = target.long()
    per_edge = F.cross_entropy(logits, left, reduction="none") * weight_left.reshape(-1) + F.cross_entropy(
        logits, left + 1, reduction="none"
    ) * weight_right.reshape(-1)
    loss = (per_edge * ious.repeat_interleave(4).detach().float()).sum() / num_boxes
    return loss, ious


def ddf_counts(corners: torch.Tensor, matched: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    """DDF's group weights: sqrt of the matched and unmatched edge counts per image."""
    batch, queries = corners.shape[:2]
    positives = int(torch.unique(torch.stack(matched, 1), dim=0).shape[0]) if matched[0].numel() else 0
    return (4 * positives / batch) ** 0.5, (4 * (batch * queries - positives) / batch) ** 0.5


def ddf_loss(
    corners: torch.Tensor,
    teacher_corners: torch.Tensor,
    teacher_logits: torch.Tensor,
    matched: tuple[torch.Tensor, torch.Tensor],
    matched_ious: torch.Tensor,
    bins: int,
    temperature: float = TEMPERATURE,
    counts: tuple[float, float] | None = None,
) -> torch.Tensor:
    """DDF from the teacher's distributions to a layer's: all queries, (B, Q, 4(N+1)) each.

    ``counts``: the (matched, unmatched) group weights to combine the two means with; default: this
    output's own (``ddf_counts``). Denoising outputs get the regular outputs' (the official code).
    """
    pred = corners.reshape(-1, bins + 1)
    teacher = teacher_corners.reshape(-1, bins + 1)
    if torch.equal(pred, teacher):  # the teacher itself
        return pred.sum() * 0
    weight = teacher_logits.sigmoid().max(dim=-1)[0]
    mask = torch.zeros_like(weight, dtype=torch.bool)
    mask[matched] = True
    weight[matched] = matched_ious.reshape_as(weight[matched]).to(weight.dtype)
    weight = weight.unsqueeze(-1).expand(*weight.shape, 4).reshape(-1).detach()
    mask = mask.unsqueeze(-1).expand(*mask.shape, 4).reshape(-1)
    kl = F.kl_div(
        F.log_softmax(pred / temperature, dim=1),
        F.softmax(teacher.detach() / temperature, dim=1),
        reduction="none",
    ).sum(-1)
    per_edge = weight * temperature**2 * kl
    num_pos, num_neg = counts if counts is not None else ddf_counts(corners, matched)
    pos = per_edge[mask].mean() if mask.any() else per_edge.sum() * 0
    neg = per_edge[~mask].mean() if (~mask).any() else per_edge.sum() * 0
    return (pos * num_pos + neg * num_neg) / (num_pos + num_neg)


def local_losses(
    outputs: Mapping[str, Any],
    targets: Sequence[Target],
    indices: Indices,
    num_boxes: float,
    bins: int,
    reg_scale: float,
    up: torch.Tensor,
    temperature: float = TEMPERATURE,
    ddf_group_counts: tuple[float, float] | None = None,
) -> dict[str, torch.Tensor]:
    """``loss_fgl`` and ``loss_ddf`` of one output (a layer), unweighted; {} without distributions."""
    if "pred_corners" not in outputs:
        return {}
    idx = _matched_index(indices)
    target_boxes = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)], dim=0)
    fgl, ious = fgl_loss(
        outputs["pred_corners"][idx],
        outputs["ref_points"][idx],
        outputs["pred_boxes"][idx],
        target_boxes,
        num_boxes,
        bins,
        reg_scale,
        up,
    )
    ddf = ddf_loss(
        outputs["pred_corners"],
        outputs["teacher_corners"],
        outputs["teacher_logits"],
        idx,
        ious,
        bins,
        temperature,
        ddf_group_counts,
    )
    return {"loss_fgl": fgl, "loss_ddf": ddf}


class _GoLsdTerms:
    """Mixin for a transformers DETR criterion: the ``local`` (FGL + DDF) loss kind and, with GO-LSD,
    the union matching for the localization terms (see the module docstring)."""

    settings: FdrSettings
    temperature: float
    weight_dict: dict[str, float]
    losses: list[str]
    matcher: Any
    union_matching: bool = False
    #: how an auxiliary output's terms are named, and whether ``forward`` weights them (RT-DETR's
    #: criterion does; Deformable-DETR's returns raw terms that ``weighted_total`` weights)
    aux_suffix = "_aux_{}"
    weights_in_forward = True

    def _init_go_lsd(
        self, settings: FdrSettings, go_lsd: bool, weight_fgl: float, weight_ddf: float, union: bool
    ) -> None:
        self.settings = settings
        self.temperature = TEMPERATURE
        self.go_lsd_up = torch.tensor([settings.a])
        self.union_matching = go_lsd and union
        self._ddf_counts: tuple[float, float] | None = None
        if go_lsd:
            self.weight_dict = {**self.weight_dict, "loss_fgl": weight_fgl, "loss_ddf": weight_ddf}
            self.losses = [*self.losses, "local"]

    def forward(self, outputs: Mapping[str, Any], targets: Sequence[Target]) -> dict[str, torch.Tensor]:
        self._ddf_counts = None  # set by this call's regular layers, read by its denoising ones
        if not self.union_matching:
            return super().forward(outputs, targets)  # type: ignore[misc,no-any-return]
        return self._union_forward(outputs, targets)

    def _terms(
        self, kind: str, outputs: Any, targets: Any, indices: Any, num_boxes: float, suffix: str
    ) -> dict[str, torch.Tensor]:
        terms = self.get_loss(kind, outputs, targets, indices, num_boxes)
        if self.weights_in_forward:
            terms = {k: v * self.weight_dict[k] for k, v in terms.items() if k in self.weight_dict}
        return {k + suffix: v for k, v in terms.items()}

    def _union_forward(
        self, outputs: Mapping[str, Any], targets: Sequence[Target]
    ) -> dict[str, torch.Tensor]:
        main = {k: v for k, v in outputs.items() if "auxiliary_outputs" not in k}
        aux = list(outputs.get("auxiliary_outputs", []))
        own = [self.matcher(main, targets)] + [self.matcher(a, targets) for a in aux]
        union = union_indices(own[0], own[1:])
        num_boxes = max(1.0, float(sum(len(t["class_labels"]) for t in targets)))
        num_union = union_size(union)
        losses: dict[str, torch.Tensor] = {}
        for i, out in enumerate([main, *aux]):
            suffix = "" if i == 0 else self.aux_suffix.format(i - 1)
            for kind in self.losses:
                shared = kind in UNION_LOSSES
                indices, n = (union, num_union) if shared else (own[i], num_boxes)
                losses |= self._terms(kind, out, targets, indices, n, suffix)
        if "dn_auxiliary_outputs" in outputs:
            meta = outputs["denoising_meta_values"]
            dn_indices = self.get_cdn_matched_indices(meta, targets)  # type: ignore[attr-defined]
            dn_boxes = num_boxes * meta["dn_num_group"]
            for i, out in enumerate(outputs["dn_auxiliary_outputs"]):
                for kind in self.losses:
                    losses |= self._terms(kind, out, targets, dn_indices, dn_boxes, f"_dn_{i}")
        return losses

    def get_loss(self, loss: str, outputs: Any, targets: Any, indices: Any, num_boxes: Any, **kw: Any) -> Any:
        if loss != "local":
            return super().get_loss(loss, outputs, targets, indices, num_boxes, **kw)  # type: ignore[misc]
        if "pred_corners" not in outputs:
            return {}
        s = self.settings
        up = self.go_lsd_up.to(outputs["pred_corners"].device)
        is_dn = bool(outputs.get("is_dn"))
        counts = self._ddf_counts if is_dn else None
        terms = local_losses(
            outputs, targets, indices, num_boxes, s.bins, s.reg_scale, up, self.temperature, counts
        )
        if not is_dn and outputs["pred_corners"] is not outputs["teacher_corners"]:
            matched = _matched_index(indices)
            self._ddf_counts = ddf_counts(outputs["pred_corners"], matched)
        return terms


def _matched_index(indices: Indices) -> tuple[torch.Tensor, torch.Tensor]:
    batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    return batch, torch.cat([s for s, _ in indices])


def _go_lsd_options(config: Any) -> tuple[float, float, bool]:
    """FGL and DDF weights and the union-matching switch a config carries (D-FINE's defaults)."""
    return (
        float(getattr(config, "weight_loss_fgl", WEIGHT_FGL)),
        float(getattr(config, "weight_loss_ddf", WEIGHT_DDF)),
        bool(getattr(config, "go_lsd_union_matching", True)),
    )


def rtdetr_criterion(config: Any, settings: FdrSettings, go_lsd: bool) -> nn.Module:
    """RT-DETR's criterion (matcher, VFL, L1 + GIoU), plus FGL and DDF when ``go_lsd``."""
    from transformers.loss.loss_rt_detr import RTDetrLoss

    class RTDetrGoLsdLoss(_GoLsdTerms, RTDetrLoss):
        pass

    criterion = RTDetrGoLsdLoss(config)
    criterion._init_go_lsd(settings, go_lsd, *_go_lsd_options(config))
    return criterion


def deformable_criterion(config: Any, settings: FdrSettings, go_lsd: bool) -> nn.Module:
    """Deformable-DETR's criterion (Hungarian matcher, sigmoid focal, L1 + GIoU), plus FGL/DDF."""
    from transformers.loss.loss_deformable_detr import DeformableDetrHungarianMatcher, DeformableDetrImageLoss

    class DeformableGoLsdLoss(_GoLsdTerms, DeformableDetrImageLoss):
        aux_suffix = "_{}"
        weights_in_forward = False

    matcher = DeformableDetrHungarianMatcher(
        class_cost=config.class_cost, bbox_cost=config.bbox_cost, giou_cost=config.giou_cost
    )
    criterion = DeformableGoLsdLoss(
        matcher=matcher,
        num_classes=config.num_labels,
        focal_alpha=config.focal_alpha,
        losses=["labels", "boxes", "cardinality"],
    )
    criterion.weight_dict = {"loss_ce": 1.0, "loss_bbox": config.bbox_loss_coefficient}
    criterion.weight_dict["loss_giou"] = config.giou_loss_coefficient
    criterion._init_go_lsd(settings, go_lsd, *_go_lsd_options(config))
    return criterion


def loss_inputs(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    corners: torch.Tensor,
    initial: torch.Tensor,
    pre_logits: torch.Tensor | None,
    pre_boxes: torch.Tensor,
    enc: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    dn_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The criterion's ``outputs`` dict in the official D-FINE layout (see the module docstring).

    ``logits``/``boxes``/``corners``: (B, L, Q, .) per layer; ``initial``/``pre_*``: (B, Q, .);
    ``enc``: the encoder's (logits, boxes) proposals; ``dn_meta``: RT-DETR's denoising split.
    """
    dn: dict[str, torch.Tensor] = {}
    if dn_meta is not None:
        split = dn_meta["dn_num_split"]
        dn["logits"], logits = torch.split(logits, split, dim=2)
        dn["boxes"], boxes = torch.split(boxes, split, dim=2)
        dn["corners"], corners = torch.split(corners, split, dim=2)
        dn["initial"], initial = torch.split(initial, split, dim=1)
        dn["pre_boxes"], pre_boxes = torch.split(pre_boxes, split, dim=1)
        if pre_logits is not None:
            dn["pre_logits"], pre_logits = torch.split(pre_logits, split, dim=1)

    def layers(
        lg: torch.Tensor, bx: torch.Tensor, cn: torch.Tensor, ref: torch.Tensor, is_dn: bool = False
    ) -> list[dict[str, Any]]:
        # boxes unclamped, as the official decoder gives them to its criterion
        teacher = cn[:, -1]
        return [
            {
                "logits": lg[:, i],
                "pred_boxes": bx[:, i],
                "pred_corners": teacher if i == lg.shape[1] - 1 else cn[:, i],
                "ref_points": ref,
                "teacher_corners": teacher,
                "teacher_logits": lg[:, -1],
                **({"is_dn": True} if is_dn else {}),
            }
            for i in range(lg.shape[1])
        ]

    per_layer = layers(logits, boxes, corners, initial)
    outputs: dict[str, Any] = dict(per_layer[-1])
    aux = per_layer[:-1]
    if pre_logits is not None:
        aux.append({"logits": pre_logits, "pred_boxes": pre_boxes})
    aux += [{"logits": lg, "pred_boxes": bx} for lg, bx in enc]
    outputs["auxiliary_outputs"] = aux
    if dn_meta is not None:
        dn_aux = layers(dn["logits"], dn["boxes"], dn["corners"], dn["initial"], is_dn=True)
        if "pre_logits" in dn:
            dn_aux.append({"logits": dn["pre_logits"], "pred_boxes": dn["pre_boxes"], "is_dn": True})
        outputs["dn_auxiliary_outputs"] = dn_aux
        outputs["denoising_meta_values"] = dn_meta
    return outputs


def weighted_total(loss_dict: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """DETR-style criteria return unweighted terms (``loss_ce``, ``loss_bbox_0``, ...): weight and sum
    them as transformers' ``DeformableDetrForObjectDetectionLoss`` does; unknown terms (the
    cardinality error) are logged, not trained on."""
    total = torch.zeros(())
    for key, value in loss_dict.items():
        base = re.sub(r"_\d+$", "", key)
        if base in weights:
            total = total + value * weights[base]
    return total


__all__ = [
    "WEIGHT_DDF",
    "WEIGHT_FGL",
    "ddf_counts",
    "ddf_loss",
    "deformable_criterion",
    "fgl_loss",
    "local_losses",
    "loss_inputs",
    "rtdetr_criterion",
    "weighted_total",
]
