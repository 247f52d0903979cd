"""GO-LSD's "global optimal" matching: the union of every decoder output's Hungarian matches.

D-FINE matches each output (final layer, earlier layers, the initial box head, the encoder's
proposals) to the ground truth on its own, as every DETR does; for the localization terms
(L1 + GIoU and GO-LSD's FGL/DDF) it then uses one matching for all of them: the union of those
matches, where a query that was matched to several objects keeps the pairing that the most outputs
agree on (the official ``DFINECriterion._get_go_indices``). A query can so be supervised towards
an object at layer ``l`` although layer ``l``'s own matching gave it another query, and the
normaliser is the union's size (``num_boxes_go``), not the number of objects.

Ties between pairings chosen equally often go to the smaller (query, object) pair: the official
code sorts the unique pairs (lexicographic, ``torch.unique``) and then by count, so this is what a
stable sort gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Indices = Sequence[tuple[torch.Tensor, torch.Tensor]]

#: The loss kinds that use the union matching (and its normaliser); the classification term keeps
#: each output's own matching.
UNION_LOSSES = ("boxes", "local")


def union_indices(main: Indices, others: Sequence[Indices]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image, each matched query once, paired with the object most outputs matched it to."""
    union: list[tuple[torch.Tensor, torch.Tensor]] = []
    for image, (rows, cols) in enumerate(main):
        pairs = torch.cat(
            [torch.stack([rows, cols], 1)] + [torch.stack([o[image][0], o[image][1]], 1) for o in others],
            dim=0,
        ).to(torch.int64)
        if pairs.numel() == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=rows.device)
            union.append((empty, empty.clone()))
            continue
        unique, counts = torch.unique(pairs, return_counts=True, dim=0)  # sorted lexicographically
        order = torch.argsort(counts, descending=True, stable=True)
        chosen: dict[int, int] = {}
        for query, target in unique[order].tolist():
            chosen.setdefault(query, target)
        union.append(
            (
                torch.tensor(list(chosen), dtype=torch.int64, device=rows.device),
                torch.tensor(list(chosen.values()), dtype=torch.int64, device=rows.device),
            )
        )
    return union


def union_size(indices: Indices) -> float:
    """The union's normaliser: matched queries over the batch, at least 1 (``num_boxes_go``)."""
    return max(1.0, float(sum(len(rows) for rows, _ in indices)))


__all__ = ["UNION_LOSSES", "union_indices", "union_size"]
