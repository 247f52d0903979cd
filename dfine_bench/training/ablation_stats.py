"""Statistics of a seed-paired ablation: exact sign-flip tests, Holm's correction, power.

Every arm is trained once per seed, and a seed fixes everything the arms share (data order, the
initial weights of every shared module, the denoising noise), so the unit of comparison is the
per-seed *difference* between two arms. Its test is the exact sign-flip permutation test: under
"no effect" each difference is as likely positive as negative, so the p-value is the share of the
``2^n`` sign assignments whose mean difference is at least as far from zero as the observed one.
The smallest p it can give is ``2 / 2^n``; a design whose ``n`` cannot reach the level it tests at
is refused before any training (``min_seeds``).

Three pairs are tested (+FDR vs baseline, +FDR+GO-LSD vs baseline, +FDR+GO-LSD vs +FDR), so each
metric's p-values get Holm's step-down correction for the family. ``detectable_effect`` is the
smallest true mean difference the design detects with 80% power (the paired t approximation at
the Bonferroni level, which Holm's first step uses): a non-significant result states that bound
instead of "no effect".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The pairs an ablation of the three arms tests: (arm, reference).
PAIRS: tuple[tuple[str, str], ...] = (
    ("fdr", "baseline"),
    ("fdr_go_lsd", "baseline"),
    ("fdr_go_lsd", "fdr"),
)


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    metric: str
    values: tuple[float, ...]  # per seed, in seed order
    mean: float
    std: float  # sample standard deviation (ddof = 1); nan with one value
    ci_low: float  # 95% t interval of the mean; nan with one value
    ci_high: float


@dataclass(frozen=True)
class PairedTest:
    """One pair of arms on one metric: per-seed differences ``arm - reference`` and their test."""

    arm: str
    reference: str
    metric: str
    differences: tuple[float, ...]
    mean_difference: float
    std_difference: float  # per-seed standard deviation of the difference (ddof = 1)
    p_value: float  # exact two-sided sign-flip permutation test
    p_holm: float  # Holm-adjusted over the tested pairs of this metric
    min_p: float  # the smallest p the test can reach with these seeds: 2 / 2^n
    detectable_effect: float  # smallest |mean difference| detected with 80% power at this design
    significant: bool  # p_holm < alpha


def min_seeds(alpha: float, comparisons: int = len(PAIRS)) -> int:
    """The fewest paired seeds with which the sign-flip test can pass Holm's first threshold."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return max(2, math.ceil(math.log2(2 * comparisons / alpha) + 1e-12))


def sign_flip_p(differences: Sequence[float]) -> float:
    """Exact two-sided sign-flip p-value of the mean of ``differences``."""
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return math.nan
    observed = abs(float(d.mean()))
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    means = np.abs(signs @ d) / d.size
    return float(np.mean(means >= observed - 1e-12))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def detectable_effect(std_difference: float, n: int, alpha: float, power: float = 0.8) -> float:
    """Smallest mean paired difference detected with ``power`` by a two-sided test at ``alpha``."""
    from scipy import stats

    if n < 2 or not math.isfinite(std_difference):
        return math.nan
    df = n - 1
    t_alpha = float(stats.t.ppf(1 - alpha / 2, df))
    t_power = float(stats.t.ppf(power, df))
    return (t_alpha + t_power) * std_difference / math.sqrt(n)


def summarise(values: Sequence[float], arm: str, metric: str) -> ArmSummary:
    from scipy import stats

    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    if a.size < 2:
        return ArmSummary(arm, metric, tuple(a.tolist()), mean, math.nan, math.nan, math.nan)
    std = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.975, a.size - 1)) * std / math.sqrt(a.size)
    return ArmSummary(arm, metric, tuple(a.tolist()), mean, std, mean - half, mean + half)


def paired_tests(
    values: Mapping[str, Sequence[float]], metric: str, alpha: float, pairs: Sequence[tuple[str, str]] = PAIRS
) -> list[PairedTest]:
    """Each pair of ``pairs`` whose arms are both in ``values`` (per-seed values, same seed order)."""
    present = [(a, r) for a, r in pairs if a in values and r in values]
    raw: list[tuple[str, str, np.ndarray, float]] = []
    for arm, ref in present:
        d = np.asarray(values[arm], dtype=float) - np.asarray(values[ref], dtype=float)
        raw.append((arm, ref, d, sign_flip_p(d)))
    adjusted = holm([p for *_, p in raw])
    level = alpha / max(1, len(raw))  # Holm's first (strictest) step: the power bound uses it
    tests = []
    for (arm, ref, d, p), p_adj in zip(raw, adjusted):
        std = float(d.std(ddof=1)) if d.size > 1 else math.nan
        tests.append(
            PairedTest(
                arm=arm,
                reference=ref,
                metric=metric,
                differences=tuple(float(x) for x in d),
                mean_difference=float(d.mean()),
                std_difference=std,
                p_value=p,
                p_holm=p_adj,
                min_p=2.0 / 2**d.size,
                detectable_effect=detectable_effect(std, int(d.size), level),
                significant=p_adj < alpha,
            )
        )
    return tests


def decision(test: PairedTest, alpha: float) -> str:
    """One honest sentence about one pair."""
    what = f"{test.arm} vs {test.reference}"
    if test.significant:
        direction = "gain" if test.mean_difference > 0 else "loss"
        return (
            f"{what}: a {direction} of {test.mean_difference:+.2f} {test.metric} "
            f"(Holm-adjusted p = {test.p_holm:.3g} < {alpha:g})"
        )
    return (
        f"{what}: no significant difference ({test.mean_difference:+.2f} {test.metric}, Holm-adjusted "
        f"p = {test.p_holm:.3g}); no gain larger than {test.detectable_effect:.2f} {test.metric} "
        "(80% power) is likely to have been missed"
    )


__all__ = [
    "PAIRS",
    "ArmSummary",
    "PairedTest",
    "decision",
    "detectable_effect",
    "holm",
    "min_seeds",
    "paired_tests",
    "sign_flip_p",
    "summarise",
]
