"""The Pareto front on hand-made points."""

from __future__ import annotations

import math

import pytest

from dfine_bench.reporting import pareto_front


def test_front_of_a_hand_made_example() -> None:
    #        latency  AP
    pts = [
        (2.0, 40.0),  # 0: fastest -> front
        (3.0, 45.0),  # 1: front
        (3.5, 44.0),  # 2: slower and worse than 1 -> dominated
        (5.0, 50.0),  # 3: front
        (6.0, 50.0),  # 4: same AP as 3 but slower -> dominated
        (8.0, 53.0),  # 5: most accurate -> front
        (2.0, 39.0),  # 6: as fast as 0 but worse -> dominated
    ]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    assert pareto_front(xs, ys) == [0, 1, 3, 5]


def test_directions_duplicates_and_nan() -> None:
    assert pareto_front([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == [0]  # cheapest is also most accurate
    assert pareto_front([3.0, 1.0, 2.0], [3.0, 1.0, 2.0]) == [1, 2, 0]  # a trade-off: all on it, by x
    assert pareto_front([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], lower_x_is_better=False) == [2]
    assert pareto_front([1.0, 2.0], [1.0, 2.0], higher_y_is_better=False) == [0]
    assert pareto_front([1.0, 1.0, 2.0], [5.0, 5.0, 4.0]) == [0, 1]  # identical points both stay
    assert pareto_front([math.nan, 2.0], [99.0, 1.0]) == [1]
    assert pareto_front([], []) == []
    with pytest.raises(ValueError):
        pareto_front([1.0], [])
