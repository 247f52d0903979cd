"""Paired differences of COCO AP between two evaluations of the same images.

Two models, backends or precisions (or a run and its baseline) evaluated on the same images
differ in AP partly because of the models and partly because of which images happen to be in
the sample. A paired bootstrap separates the two: both evaluations are resampled with the *same*
image weights, replicate by replicate, and the spread of the difference is the sampling noise
of ΔAP on these images.

What is persisted, and why: every COCO record keeps its bootstrap replicates
(``details["bootstrap"]["values"]``, B values per stat, percent) together with the fingerprint
of the weights that made them (``weights_sha256``: the sorted image ids, B, the seed and the
multinomial counts themselves). Two records with the same fingerprint were resampled
identically, so replicate ``b`` of one minus replicate ``b`` of the other *is* the paired
bootstrap replicate of the difference; nothing is recomputed and nothing outside the records is
needed. This survives what files do not: a prediction folder deleted or never copied, a baseline
kept as records only (``results/baselines/``). The price is that only records made with the
same ``evaluation.bootstrap`` settings pair (the seed is fixed, not the run's, for that reason);
anything else is refused with one line naming what differs.

The result (``PairedDifference``): Δ = A − B from the records' own values, a percentile interval
of the replicate differences, and a two-sided bootstrap p-value, the smallest level at which
that percentile interval excludes zero: ``p = min(1, 2 min(1 + #{Δ* <= 0}, 1 + #{Δ* >= 0}) / (B + 1))``.
Replicate differences that are all exactly zero (identical matchings, e.g. ONNX Runtime
reproducing eager fp32 detection for detection) give p = 1: no difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dfine_bench.errors import DatasetError
from dfine_bench.records.schema import ResultRecord

#: The stats with paired differences (the bootstrap's).
PAIRED_STATS = ("AP", "AP50", "AP75")
NO_DIFFERENCE = "no difference"


@dataclass(frozen=True)
class PairedDifference:
    """Δ = A − B of one stat (percent points), its percentile interval and two-sided p-value."""

    metric: str
    a: float
    b: float
    ci: tuple[float, float]
    p_value: float
    replicates: int
    seed: int
    confidence: float
    identical: bool  # every replicate difference is exactly 0

    @property
    def delta(self) -> float:
        return self.a - self.b

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.ci[0] > 0 or self.ci[1] < 0

    @property
    def direction(self) -> int:
        """+1: A significantly higher; -1: lower; 0: the interval holds zero."""
        return 1 if self.ci[0] > 0 else (-1 if self.ci[1] < 0 else 0)

    def verdict(self) -> str:
        """``higher`` / ``lower`` (A against B) when the interval excludes zero, else ``no difference``."""
        return {1: "higher", -1: "lower", 0: NO_DIFFERENCE}[self.direction]

    def text(self) -> str:
        """``+0.42 [-0.10, +0.95] p=0.11``."""
        lo, hi = self.ci
        return f"{self.delta:+.2f} [{lo:+.2f}, {hi:+.2f}] p={format_p(self.p_value)}"


def format_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def describe(record: ResultRecord) -> str:
    """A record as a pairing message names it: ``dfine_s eager fp32 (run 2026...)``."""
    s = record.setup
    return f"{record.model.name} {s.backend or 'eager'} {s.dtype or 'fp32'} (run {record.run_id})"


def _bootstrap(record: ResultRecord) -> dict[str, Any] | None:
    boot = record.details.get("bootstrap")
    return boot if isinstance(boot, dict) and isinstance(boot.get("values"), dict) else None


def pairing_problem(a: ResultRecord, b: ResultRecord) -> str | None:
    """Why ``a`` and ``b`` cannot be compared pairwise (one line naming what differs), None if they can."""
    for r in (a, b):
        if r.task != "evaluation" or r.status != "ok":
            return f"{describe(r)} is no successful evaluation record"
        if _bootstrap(r) is None:
            return (
                f"{describe(r)} has no AP bootstrap (evaluated with evaluation.bootstrap.enabled=false, "
                "or before the intervals existed): evaluate it again"
            )
    da, db = a.dataset, b.dataset
    if da is None or db is None:
        return "a record names no dataset: the images cannot be matched"
    if da.name != db.name:
        return f"different datasets: {describe(a)} on {da.name!r}, {describe(b)} on {db.name!r}"
    if da.annotations_sha256 != db.annotations_sha256:
        return (
            f"different annotation files: sha256 {str(da.annotations_sha256)[:12]} ({describe(a)}) vs "
            f"{str(db.annotations_sha256)[:12]} ({describe(b)})"
        )
    ba, bb = _bootstrap(a) or {}, _bootstrap(b) or {}
    if ba.get("image_ids_sha256") != bb.get("image_ids_sha256"):
        return (
            f"different image sets: {ba.get('images')} images ({describe(a)}) vs {bb.get('images')} "
            f"({describe(b)}), image ids sha256 {str(ba.get('image_ids_sha256'))[:12]} vs "
            f"{str(bb.get('image_ids_sha256'))[:12]} (failed images or another subset)"
        )
    settings = [(x.get("replicates"), x.get("seed")) for x in (ba, bb)]
    if settings[0] != settings[1]:
        (na, sa), (nb, sb) = settings
        return (
            f"different bootstrap settings: B={na} seed {sa} ({describe(a)}) vs B={nb} seed {sb} "
            f"({describe(b)}); evaluate one again with the other's evaluation.bootstrap"
        )
    if ba.get("weights_sha256") != bb.get("weights_sha256"):
        return "different resampling weights for the same images and settings (another numpy generator?)"
    return None


def check_pairable(a: ResultRecord, b: ResultRecord) -> None:
    """Raise a one-line ``DatasetError`` naming what differs when ``a`` and ``b`` do not pair."""
    problem = pairing_problem(a, b)
    if problem:
        raise DatasetError(f"no paired comparison of {describe(a)} and {describe(b)}: {problem}")


def difference(
    values_a: Sequence[float],
    values_b: Sequence[float],
    *,
    a: float,
    b: float,
    metric: str,
    seed: int,
    confidence: float = 0.95,
) -> PairedDifference:
    """The paired difference from two replicate series made with the same weights."""
    va, vb = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    if va.shape != vb.shape or va.ndim != 1 or not va.size:
        raise ValueError(f"replicate series must have one equal length, got {va.shape} and {vb.shape}")
    d = va - vb
    n = d.size
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = (float(x) for x in np.percentile(d, [tail, 100.0 - tail]))
    below, above = int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0))
    p = min(1.0, 2.0 * (1 + min(below, above)) / (n + 1))
    return PairedDifference(
        metric=metric,
        a=float(a),
        b=float(b),
        ci=(lo, hi),
        p_value=p,
        replicates=n,
        seed=seed,
        confidence=confidence,
        identical=bool(np.all(d == 0)),
    )


def paired_difference(a: ResultRecord, b: ResultRecord, metric: str = "AP") -> PairedDifference:
    """Δ``metric`` = A − B with its paired-bootstrap interval and p-value (see the module docstring).

    Raises a one-line ``DatasetError`` when the records are not on the same images, dataset and
    annotations, or were resampled differently.
    """
    if metric not in PAIRED_STATS:
        raise DatasetError(f"paired differences exist for {', '.join(PAIRED_STATS)}, not {metric!r}")
    check_pairable(a, b)
    ba, bb = _bootstrap(a) or {}, _bootstrap(b) or {}
    va, vb = ba["values"].get(metric), bb["values"].get(metric)
    value_a, value_b = a.value(metric), b.value(metric)
    if va is None or vb is None or value_a is None or value_b is None or None in va or None in vb:
        raise DatasetError(
            f"no paired {metric} for {describe(a)} and {describe(b)}: {metric} is undefined on these images"
        )
    return difference(
        va,
        vb,
        a=value_a,
        b=value_b,
        metric=metric,
        seed=int(ba.get("seed", 0)),
        confidence=float(ba.get("confidence", 0.95)),
    )


def paired_differences(a: ResultRecord, b: ResultRecord) -> dict[str, PairedDifference]:
    """``paired_difference`` of every stat in ``PAIRED_STATS`` that both records define."""
    check_pairable(a, b)
    out = {}
    for metric in PAIRED_STATS:
        try:
            out[metric] = paired_difference(a, b, metric)
        except DatasetError:  # undefined on these images (no ground truth in that range)
            continue
    return out
