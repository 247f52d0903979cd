"""Statistics of a seeded ablation: per-arm mean and standard deviation, differences, tests.

Each arm's AP over seeds is compared to the baseline arm with Welch's t-test (unequal variances;
``scipy.stats.ttest_ind(equal_var=False)``) and an exact two-sided permutation test of the
difference of means (every relabelling of the pooled values; with 3 + 3 seeds the smallest
p-value it can give is 2/20 = 0.1, said in ``note``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    values: tuple[float, ...]
    mean: float
    std: float  # sample standard deviation (ddof = 1); nan with one value


@dataclass(frozen=True)
class Comparison:
    arm: str
    baseline: str
    difference: float  # mean(arm) - mean(baseline)
    welch_t: float
    welch_p: float
    permutation_p: float
    min_permutation_p: float  # the smallest p-value the permutation test can reach at these sizes


def summarise(values: Sequence[float], arm: str) -> ArmSummary:
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return ArmSummary(arm=arm, values=tuple(float(v) for v in array), mean=float(array.mean()), std=std)


def permutation_p(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Exact two-sided permutation p-value of mean(b) - mean(a), and the smallest reachable one."""
    pooled = np.asarray([*a, *b], dtype=float)
    n_a = len(a)
    observed = abs(float(np.mean(b)) - float(np.mean(a)))
    total = extreme = 0
    for chosen in itertools.combinations(range(len(pooled)), n_a):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(chosen)] = True
        diff = abs(float(pooled[~mask].mean()) - float(pooled[mask].mean()))
        total += 1
        extreme += diff >= observed - 1e-12
    # two relabellings (the observed one and its mirror) always reach the observed difference
    return extreme / total, min(1.0, 2 / total)


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p of mean(b) - mean(a); nan when undefined (zero variance)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return math.nan, math.nan
    result = stats.ttest_ind(b, a, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def compare_arms(
    values: Mapping[str, Sequence[float]], baseline: str
) -> tuple[list[ArmSummary], list[Comparison]]:
    """Summaries of every arm, and each other arm against ``baseline``."""
    summaries = [summarise(v, arm) for arm, v in values.items()]
    base = values[baseline]
    comparisons = []
    for arm, v in values.items():
        if arm == baseline:
            continue
        t, p = welch(base, v)
        perm, floor = permutation_p(base, v)
        comparisons.append(
            Comparison(
                arm=arm,
                baseline=baseline,
                difference=float(np.mean(v)) - float(np.mean(base)),
                welch_t=t,
                welch_p=p,
                permutation_p=perm,
                min_permutation_p=floor,
            )
        )
    return summaries, comparisons
