"""Does a backend compute what eager PyTorch computes? The output check before any timing counts.

DETR-style models select their queries by top-k over encoder scores. Two runtimes that agree to
1e-6 on every score can still break a near-tie differently and return the same queries in another
order (seen here: D-FINE-N at 640x640 under ONNX Runtime swaps queries 55 and 56; the raw
difference is 0.64, the difference after matching queries is 5e-6). Comparing position by
position would call such a backend wrong, so the check matches queries one-to-one first
(``scipy.optimize.linear_sum_assignment`` on the largest per-query difference) and reports both
numbers. Outputs that are not ``(batch, queries, features)`` tensors are compared as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class OutputDifference:
    """How far a backend's outputs are from the reference's on the same input.

    ``matched_max_abs_diff`` is the largest |difference| after pairing queries one-to-one (what
    the gate uses); ``max_abs_diff`` is position by position; ``queries_reordered`` counts the
    queries whose best partner sits at another position. ``inf`` means shapes differ or a
    value is not finite.
    """

    max_abs_diff: float
    matched_max_abs_diff: float
    queries_reordered: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "max_abs_diff_query_order": self.max_abs_diff,
            "matched_max_abs_diff": self.matched_max_abs_diff,
            "queries_reordered": self.queries_reordered,
        }


def _as_float(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().to("cpu", torch.float64) for t in tensors]


def _positional(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        if x.numel() == 0:
            continue
        d = (x - y).abs()
        if not torch.isfinite(d).all():
            return float("inf")
        worst = max(worst, float(d.max()))
    return worst


def _per_query(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """(batch, queries, all features) when every output is laid out per query, else None."""
    if not tensors or any(t.dim() != 3 for t in tensors):
        return None
    lead = tensors[0].shape[:2]
    if any(t.shape[:2] != lead for t in tensors):
        return None
    return torch.cat(tensors, dim=-1)


def compare_outputs(reference: Sequence[torch.Tensor], candidate: Sequence[torch.Tensor]) -> OutputDifference:
    """Compare two output tuples (same order as the adapter's ``output_names``)."""
    inf = OutputDifference(float("inf"), float("inf"), 0)
    if len(reference) != len(candidate):
        return inf
    ref, got = _as_float(reference), _as_float(candidate)
    if any(x.shape != y.shape for x, y in zip(ref, got)):
        return inf
    positional = _positional(ref, got)
    ref_q, got_q = _per_query(ref), _per_query(got)
    if ref_q is None or got_q is None or not torch.isfinite(ref_q).all() or not torch.isfinite(got_q).all():
        return OutputDifference(positional, positional, 0)
    matched, reordered = 0.0, 0
    for r, g in zip(ref_q, got_q):  # one image of the batch at a time
        cost = torch.cdist(r, g, p=float("inf")).numpy()
        rows, cols = linear_sum_assignment(cost)
        matched = max(matched, float(cost[rows, cols].max(initial=0.0)))
        reordered += int(np.count_nonzero(rows != cols))
    return OutputDifference(positional, matched, reordered)
