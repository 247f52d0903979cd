"""Which input sizes a model accepts, checked at start-up (not as a shape error mid-run).

A DETR with a hybrid encoder (D-FINE, RT-DETR) fuses feature maps of several strides (its spec's
``extra["feat_strides"]``): height and width must be multiples of the largest stride, or the
upsampled map and the finer one differ by a cell; and its encoder picks the top ``num_queries``
of all anchor cells, so the cells over all strides (sum of (h/s)*(w/s)) must number at least
``num_queries`` (D-FINE-N at 64x64 has 20 cells for 300 queries: "selected index k out of range").
A model whose spec does not state its strides is not checked here.
"""

from __future__ import annotations

from collections.abc import Sequence

from dfine_bench.adapters.spec import ModelSpec
from dfine_bench.errors import ConfigError


def _cells(h: int, w: int, strides: Sequence[int]) -> int:
    return sum((h // s) * (w // s) for s in strides)


def smallest_square(strides: Sequence[int], queries: int) -> int:
    """The smallest square side the model accepts."""
    step = max(strides)
    side = step
    while _cells(side, side, strides) < queries:
        side += step
    return side


def check_input_size(key: str, spec: ModelSpec, size: Sequence[int]) -> tuple[int, int]:
    """``size`` as (height, width) if ``spec``'s model runs at it, else one ``ConfigError`` line."""
    h, w = (int(v) for v in size)
    strides = [int(s) for s in spec.extra.get("feat_strides", [])]
    if not strides:
        return h, w
    step, queries = max(strides), int(spec.num_queries or 0)
    cells = _cells(h, w, strides)
    if h % step or w % step or cells < queries:
        side = smallest_square(strides, queries)
        raise ConfigError(
            f"{key}=[{h}, {w}]: {spec.name} accepts [height, width] in multiples of {step} (its feature "
            f"strides are {', '.join(map(str, strides))}) with at least {queries} anchor cells for its "
            f"{queries} queries ({h}x{w} gives {cells}); e.g. [{side}, {side}] or larger"
        )
    return h, w


__all__ = ["check_input_size", "smallest_square"]
