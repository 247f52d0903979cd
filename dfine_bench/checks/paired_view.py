"""Paired ΔAP of a run against its baseline, shown next to the gate's tolerance verdicts.

An evaluation record and its baseline entry that carry a bootstrap of the same images resampled
alike (``details["bootstrap"]``: image set and weights fingerprints, B, seed) pair replicate by
replicate (``evaluation/paired.py``): Δ = run − baseline of AP, AP50 and AP75 with its percentile
interval and two-sided bootstrap p-value. It is information only: the exit code stays the
tolerance rule's (a ΔAP can be significant and still inside the tolerance, or the reverse).

A record that cannot be paired gets one short note saying why (a baseline saved before baselines
kept the bootstrap, a run evaluated without one, another image set or bootstrap setting), never an
error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dfine_bench.checks.entries import Entry
from dfine_bench.checks.rules import Row

if TYPE_CHECKING:
    from dfine_bench.evaluation.paired import PairedDifference

#: The title of the paired section, in the console and in markdown.
TITLE = (
    "paired Δ run − baseline (bootstrap over the same images); informational: "
    "the exit code is the tolerance rule's"
)
HEADER = ("record", "metric", "verdict", "Δ [CI]", "p")


@dataclass(frozen=True)
class PairedLine:
    """One gated COCO stat of a record: its tolerance verdict and the paired difference."""

    record_id: str
    metric: str
    verdict: str
    diff: PairedDifference

    def cells(self) -> list[str]:
        d = self.diff
        lo, hi = d.ci
        level = f"{100 * d.confidence:g}%"
        p = f"{d.p_value:.3f}" if d.p_value >= 0.001 else "<0.001"
        return [
            self.record_id,
            self.metric,
            self.verdict,
            f"{d.delta:+.2f} [{lo:+.2f}, {hi:+.2f}] {level}",
            p,
        ]


@dataclass
class PairedView:
    """The paired lines of a check and, per record that could not be paired, why."""

    lines: list[PairedLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lines or self.notes)


def pairing_problem(base: Entry, new: Entry) -> str | None:
    """Why a baseline entry and a run's entry do not pair (a short phrase), None if they do.

    Dataset, annotations and weights are the gate's own comparability checks: rows exist only
    where they match. What is left is the bootstrap itself."""
    ba, bn = base.bootstrap, new.bootstrap
    if ba is None:
        return "baseline has no bootstrap (saved before baselines kept it: re-save the baseline)"
    if bn is None:
        return "the run has no bootstrap (evaluated with evaluation.bootstrap.enabled=false)"
    if ba.get("image_ids_sha256") != bn.get("image_ids_sha256"):
        return (
            f"other image set ({ba.get('images')} images in the baseline, {bn.get('images')} in the run: "
            "failed images or another subset)"
        )
    settings = [(x.get("replicates"), x.get("seed")) for x in (ba, bn)]
    if settings[0] != settings[1]:
        (nb, sb), (nr, sr) = settings
        return f"other bootstrap settings (B={nb} seed {sb} in the baseline, B={nr} seed {sr} in the run)"
    if ba.get("weights_sha256") != bn.get("weights_sha256"):
        return "other resampling weights for the same images and settings (another numpy generator?)"
    return None


def _replicates(boot: Mapping[str, Any], metric: str) -> list[float] | None:
    values = (boot.get("values") or {}).get(metric)
    if not isinstance(values, list) or not values or any(v is None for v in values):
        return None  # undefined on some replicate (no ground truth in that range)
    return [float(v) for v in values]


def _pair_row(row: Row, base: Entry, new: Entry) -> PairedLine | None:
    """The paired line of one row, None where the stat has no replicates or no value on a side."""
    from dfine_bench.evaluation.paired import difference  # deferred: evaluation loads torch

    vb = _replicates(base.bootstrap or {}, row.metric)
    vn = _replicates(new.bootstrap or {}, row.metric)
    if vb is None or vn is None or len(vb) != len(vn):
        return None
    b, n = row.baseline, row.value
    if not (isinstance(b, (int, float)) and isinstance(n, (int, float))):
        return None
    if not (math.isfinite(b) and math.isfinite(n)):
        return None
    boot = new.bootstrap or {}
    diff = difference(
        vn,
        vb,
        a=float(n),
        b=float(b),
        metric=row.metric,
        seed=int(boot.get("seed", 0)),
        confidence=float(boot.get("confidence", 0.95)),
    )
    return PairedLine(row.record_id, row.metric, row.verdict, diff)


def _rows_by_record(
    base_entries: Mapping[str, Entry], run_entries: Mapping[str, Entry], rows: Sequence[Row]
) -> dict[str, list[Row]]:
    """The rows of stats a bootstrap holds, of the evaluation records both sides have, per record."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        base, new = base_entries.get(row.record_id), run_entries.get(row.record_id)
        if base is None or new is None or new.task != "evaluation":
            continue
        stats = (base.bootstrap or new.bootstrap or {}).get("values") or {}
        if row.metric in stats:
            out.setdefault(row.record_id, []).append(row)
    return out


def _pair_record(rid: str, base: Entry, new: Entry, rows: list[Row], view: PairedView) -> None:
    problem = pairing_problem(base, new)
    if problem:
        view.notes.append(f"{rid}: not paired: {problem}")
        return
    lines = [line for line in (_pair_row(r, base, new) for r in rows) if line is not None]
    view.lines.extend(lines)
    paired = {line.metric for line in lines}
    missing = [r.metric for r in rows if r.metric not in paired]
    if missing:
        view.notes.append(f"{rid}: not paired: {', '.join(missing)} undefined on some bootstrap replicate")


def paired_view(
    base_entries: Mapping[str, Entry], run_entries: Mapping[str, Entry], rows: Sequence[Row]
) -> PairedView:
    """Pair every AP/AP50/AP75 row (a stat the bootstraps hold) of the evaluation records both sides have."""
    view = PairedView()
    for rid, record_rows in _rows_by_record(base_entries, run_entries, rows).items():
        _pair_record(rid, base_entries[rid], run_entries[rid], record_rows, view)
    return view
