"""The Pareto front of (cost, accuracy) points, as drawn per family in the paper's Figure 1.

A point is on the front when no other point is at least as good in both coordinates and
strictly better in one (lower cost, e.g. latency / params / GFLOPs; higher accuracy, AP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_front(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    lower_x_is_better: bool = True,
    higher_y_is_better: bool = True,
) -> list[int]:
    """Indices of the non-dominated points, ordered by x (ascending); NaN points are never on it.

    Identical points do not dominate each other, so both stay on the front.
    """
    if len(xs) != len(ys):
        raise ValueError(f"pareto_front: {len(xs)} x values but {len(ys)} y values")
    sx = 1.0 if lower_x_is_better else -1.0
    sy = 1.0 if higher_y_is_better else -1.0
    pts = [
        (i, sx * float(x), sy * float(y))
        for i, (x, y) in enumerate(zip(xs, ys))
        if not (math.isnan(float(x)) or math.isnan(float(y)))
    ]
    front = []
    for i, x, y in pts:
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, x2, y2 in pts if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (float(xs[i]), float(ys[i])))
