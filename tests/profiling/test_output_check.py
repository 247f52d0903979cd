"""The output check that decides whether a backend's timings count."""

from __future__ import annotations

import math

import torch

from dfine_bench.profiling.output_check import compare_outputs


def _outputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 30, 8, generator=gen), torch.rand(2, 30, 4, generator=gen)


def test_queries_in_another_order_are_the_same_outputs() -> None:
    logits, boxes = _outputs()
    perm = torch.arange(30)
    perm[[4, 5]] = perm[[5, 4]]  # a near-tie broken the other way: two queries swap places
    diff = compare_outputs((logits, boxes), (logits[:, perm], boxes[:, perm] + 1e-7))
    assert diff.max_abs_diff > 0.1
    assert diff.matched_max_abs_diff < 1e-6
    assert diff.queries_reordered == 4  # two swapped queries in each of the two images


def test_a_changed_query_is_a_difference_even_after_matching() -> None:
    logits, boxes = _outputs()
    wrong = boxes.clone()
    wrong[1, 7] += 0.3
    diff = compare_outputs((logits, boxes), (logits, wrong))
    assert math.isclose(diff.matched_max_abs_diff, 0.3, abs_tol=1e-6)
    assert diff.queries_reordered == 0


def test_shape_or_value_faults_are_infinite() -> None:
    logits, boxes = _outputs()
    assert math.isinf(compare_outputs((logits, boxes), (logits[:, :10], boxes)).matched_max_abs_diff)
    assert math.isinf(compare_outputs((logits,), (logits, boxes)).matched_max_abs_diff)
    nan = logits.clone()
    nan[0, 0, 0] = float("nan")
    assert math.isinf(compare_outputs((logits, boxes), (nan, boxes)).matched_max_abs_diff)


def test_outputs_not_laid_out_per_query_compare_position_by_position() -> None:
    a = torch.zeros(5)
    diff = compare_outputs((a,), (a + 0.25,))
    assert math.isclose(diff.max_abs_diff, 0.25) and math.isclose(diff.matched_max_abs_diff, 0.25)
