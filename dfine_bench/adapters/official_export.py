"""The inverse of ``official.convert_state_dict``: our D-FINE state dict in the official key layout.

Used to write an official-layout ``.pth`` from weights trained here (the fixture), so that the
``weights=official`` path is tested on trained weights, not only on random ones. The inverse is
derived from the same rule table, so the two cannot drift apart, and every export is checked by
converting it back: a key that does not survive the round trip is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from dfine_bench.adapters.official import _BACKBONE_COMPONENTS, _QKV_RULES, _RULES, convert_state_dict
from dfine_bench.errors import CheckpointError

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


def to_official_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ``DFineForObjectDetection`` state dict renamed to the official D-FINE layout."""
    official: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if key.endswith("num_batches_tracked") or _tied_alias(key, state):
            continue
        if _fused_part(key, tensor, qkv):
            continue
        lookup = _backbone_back(key) if key.startswith("model.backbone.") else key
        for regex, template in _INVERSE_RULES:
            match = regex.fullmatch(lookup)
            if match:
                official[match.expand(template)] = tensor
                break
        else:
            unknown.append(key)
    for name, parts in qkv.items():
        official[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    if unknown:
        raise CheckpointError(
            f"no official D-FINE name for {len(unknown)} tensors: {', '.join(unknown[:10])}"
        )
    back = convert_state_dict(official, "<exported state dict>")
    expected = {k for k in state if not (k.endswith("num_batches_tracked") or _tied_alias(k, state))}
    if set(back) != expected:
        raise CheckpointError(f"official export does not round-trip: {sorted(set(back) ^ expected)[:10]}")
    return official


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
