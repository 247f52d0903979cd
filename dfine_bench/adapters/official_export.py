"""The inverse of ``official.convert_state_dict``: our D-FINE state dict in the official key layout.

Used to write an official-layout ``.pth`` from weights trained here (the fixture), so that the
``weights=official`` path is tested on trained weights, not only on random ones, and so that the
official tools (``train.py --test-only -r``, ``torch_inf.py``, ``export_onnx.py``) accept it: they
load with a strict ``load_state_dict``, so the export holds every key of the official model's
``state_dict``, the ones our model has no counterpart for included:

* ``decoder.up`` / ``decoder.reg_scale``: the official ``DFINETransformer`` owns these two
  parameters and hands the same objects to its layer stack, so they appear under both
  ``decoder.`` and ``decoder.decoder.``;
* ``decoder.anchors`` / ``decoder.valid_mask``: buffers the official decoder registers when its
  config sets ``eval_spatial_size``; computed here the way it computes them (``official_anchors``)
  for the model's input size, which the official config must then name;
* every BatchNorm's ``num_batches_tracked`` (the frozen backbone norms of L/X have none, in both).

The inverse is derived from the importer's rule table, so the two cannot drift apart, and every
export is checked by converting it back: a key that does not survive the round trip is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dfine_bench.adapters.official import _BACKBONE_COMPONENTS, _QKV_RULES, _RULES, convert_state_dict
from dfine_bench.errors import CheckpointError

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter

#: The official ``DFINETransformer`` defaults: anchor side per level (times 2**level) and the
#: margin inside which an anchor centre or side counts as valid.
ANCHOR_GRID_SIZE = 0.05
ANCHOR_EPS = 1e-2

_GROUP = re.compile(r"\((?:[^()\\]|\\.)*\)")
_BACKBONE_BACK = {v: k for k, v in _BACKBONE_COMPONENTS.items()}


def _invert(pattern: str, replacement: str) -> tuple[re.Pattern[str], str]:
    """(regex over our keys, template of the official key) for one official -> ours rule."""
    groups = _GROUP.findall(pattern)
    inverse_pattern = ""
    pos = 0
    for match in re.finditer(r"\\(\d)", replacement):
        inverse_pattern += re.escape(replacement[pos : match.start()]) + groups[int(match.group(1)) - 1]
        pos = match.end()
    inverse_pattern += re.escape(replacement[pos:])
    template, index = pattern, 0

    def number(_m: re.Match[str]) -> str:
        nonlocal index
        index += 1
        return f"\\{index}"

    template = _GROUP.sub(number, template).replace("\\.", ".")
    return re.compile(inverse_pattern), template


_INVERSE_RULES = tuple(_invert(p, r) for p, r in _RULES)
_INVERSE_QKV = tuple(
    (
        re.compile(
            _invert(p, t.replace("{}", "(q|k|v)"))[0].pattern.replace(re.escape("(q|k|v)"), "(q|k|v)")
        ),
        p,
    )
    for p, t in _QKV_RULES
)


def _backbone_back(key: str) -> str:
    return ".".join(_BACKBONE_BACK.get(part, part) for part in key.split("."))


def official_anchors(
    eval_spatial_size: Sequence[int], feat_strides: Sequence[int], num_levels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(anchors, valid_mask) as the official decoder registers them for ``eval_spatial_size``.

    Level ``l`` (stride ``s``; strides beyond the given ones double the last, as the official
    decoder extends them) is an ``int(H / s) x int(W / s)`` grid of cell centres with side
    ``0.05 * 2**l``, in normalised [0, 1] coordinates. An anchor is valid when all four values lie
    strictly within ``eps`` of the border; anchors are stored as logits, invalid ones as +inf.
    Shapes ``[1, N, 4]`` (float32) and ``[1, N, 1]`` (bool).
    """
    height, width = (int(v) for v in eval_spatial_size)
    strides = list(feat_strides)
    while len(strides) < num_levels:
        strides.append(strides[-1] * 2)
    levels = []
    for level, stride in enumerate(strides[:num_levels]):
        rows, cols = int(height / stride), int(width / stride)
        y, x = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        centre = (torch.stack([x, y], dim=-1) + 0.5) / torch.tensor([cols, rows], dtype=torch.float32)
        side = torch.full_like(centre, ANCHOR_GRID_SIZE * 2.0**level)
        levels.append(torch.cat([centre, side], dim=-1).reshape(1, rows * cols, 4))
    boxes = torch.cat(levels, dim=1)
    valid = ((boxes > ANCHOR_EPS) & (boxes < 1 - ANCHOR_EPS)).all(-1, keepdim=True)
    logits = torch.where(valid, torch.log(boxes / (1 - boxes)), torch.inf)
    return logits, valid


def official_state_dict(adapter: DetectorAdapter) -> dict[str, torch.Tensor]:
    """A D-FINE adapter's model as the official code's ``model.state_dict()``, for its input size."""
    config: Any = getattr(adapter.model, "config", None)  # transformers' DFineConfig
    if config is None:
        raise CheckpointError(f"{adapter.spec.name}: not a D-FINE model with a config; no official export")
    return to_official_state_dict(
        adapter.model.state_dict(),
        eval_spatial_size=adapter.spec.input_size,
        feat_strides=list(config.feat_strides),
        num_levels=int(config.num_feature_levels),
    )


def save_official_checkpoint(adapter: DetectorAdapter, path: str | Path) -> Path:
    """Write ``{"model": state_dict}`` as the official training code saves it; never overwrites."""
    target = Path(path)
    if target.exists():
        raise CheckpointError(f"{target} already exists; choose a new file for the official checkpoint")
    torch.save({"model": official_state_dict(adapter)}, target)
    return target


def to_official_state_dict(
    state: Mapping[str, torch.Tensor],
    *,
    eval_spatial_size: Sequence[int],
    feat_strides: Sequence[int],
    num_levels: int | None = None,
) -> dict[str, torch.Tensor]:
    """Our ``DFineForObjectDetection`` state dict renamed to the official D-FINE layout, with
    every key the official model has (see the module docstring); ``eval_spatial_size`` is the
    (height, width) the official config will name, ``num_levels`` defaults to the number of
    decoder input projections in ``state``."""
    if len(eval_spatial_size) != 2 or min(int(v) for v in eval_spatial_size) <= 0:
        raise CheckpointError(
            f"official export: eval_spatial_size must be (height, width) > 0, got {tuple(eval_spatial_size)}"
        )
    official = _renamed_to_official(state)
    _add_official_extras(official, state, eval_spatial_size, feat_strides, num_levels)
    _check_round_trip(official, state)
    return official


def _renamed_to_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor of ``state`` under its official name (q/k/v fused back); tied aliases dropped."""
    official: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if _tied_alias(key, state) or _fused_part(key, tensor, qkv):
            continue
        name = _official_name(key)
        if name is None:
            unknown.append(key)
        else:
            official[name] = tensor
    for name, parts in qkv.items():
        official[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    if unknown:
        raise CheckpointError(
            f"no official D-FINE name for {len(unknown)} tensors: {', '.join(unknown[:10])}"
        )
    return official


def _official_name(key: str) -> str | None:
    """The official name of one (unfused) key, or None where no rule knows it."""
    lookup = _backbone_back(key) if key.startswith("model.backbone.") else key
    for regex, template in _INVERSE_RULES:
        match = regex.fullmatch(lookup)
        if match:
            return match.expand(template)
    return None


def _check_round_trip(official: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> None:
    """The export converted back must give exactly our keys (tied aliases aside)."""
    back = convert_state_dict(official, "<exported state dict>")
    expected = {k for k in state if not _tied_alias(k, state)}
    if set(back) != expected:
        raise CheckpointError(f"official export does not round-trip: {sorted(set(back) ^ expected)[:10]}")


def _add_official_extras(
    official: dict[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    eval_spatial_size: Sequence[int],
    feat_strides: Sequence[int],
    num_levels: int | None,
) -> None:
    """The keys the official model has and ours does not: the decoder's own ``up``/``reg_scale``
    (the layer stack's, shared) and the anchors it registers for ``eval_spatial_size``."""
    for name in ("up", "reg_scale"):
        shared = official.get(f"decoder.decoder.{name}")
        if shared is None:
            raise CheckpointError(f"official export: the state dict has no model.decoder.{name}")
        official[f"decoder.{name}"] = shared.clone()
    if num_levels is None:
        num_levels = len({k.split(".")[2] for k in state if k.startswith("model.decoder_input_proj.")})
    anchors, valid = official_anchors(eval_spatial_size, feat_strides, num_levels)
    official["decoder.anchors"], official["decoder.valid_mask"] = anchors, valid


def _tied_alias(key: str, state: Mapping[str, torch.Tensor]) -> bool:
    """The detection head's top-level ``class_embed``/``bbox_embed`` are the decoder's own heads
    (tied in transformers), saved under both names; the official layout has them once."""
    return key.startswith(("class_embed.", "bbox_embed.")) and f"model.decoder.{key}" in state


def _fused_part(key: str, tensor: torch.Tensor, qkv: dict[str, dict[str, torch.Tensor]]) -> bool:
    """Collect q/k/v projections of one attention into the fused ``in_proj`` they came from."""
    for regex, pattern in _INVERSE_QKV:
        match = regex.fullmatch(key)
        if match:
            *indices, which, kind = match.groups()
            groups = _GROUP.findall(pattern)
            name = pattern
            for group, value in zip(groups, [*indices, kind]):
                name = name.replace(group, value, 1)
            qkv.setdefault(name.replace("\\.", "."), {})[which] = tensor
            return True
    return False
