"""Relative claims: an ordering, gain or ratio between two models measured in the same run.

Two records compare when they share the run and the measuring conditions (``_context``); the
claim's ``conditions`` (gpu, real_weights, coco) and the timing's stability decide whether the
pair can be judged or is only shown ("not comparable").

An ordering of AP, AP50 or AP75 ("X beats Y") is judged on the paired bootstrap of the two
evaluations (``evaluation.paired``): ``pass`` only when the interval of the difference excludes
zero in the claimed direction, ``fail`` when it excludes zero the other way, otherwise ``not
significant`` ("not significant on these images"): a few tenths of AP on a sample of images can
be noise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from dfine_bench.claims.model import Claim, ClaimConditions, task_of_metric
from dfine_bench.claims.result import (
    NOT_SIGNIFICANT,
    UNKNOWN_ORIGIN,
    ClaimResult,
    claim_result,
    coco_conditions,
    input_size,
    measured_value,
    not_ok,
    unsteady,
    weights_release,
)
from dfine_bench.records.schema import ResultRecord

#: The stats whose orderings need a significant paired difference (``evaluation.paired.PAIRED_STATS``).
_PAIRED_STATS = ("AP", "AP50", "AP75")


def _context(record: ResultRecord) -> tuple[object, ...]:
    """What two records must share to be compared: same run and the same measuring conditions."""
    s = record.setup
    if record.task == "complexity":
        return (record.run_id, input_size(record))
    if record.task == "evaluation":
        dataset = record.dataset
        return (
            record.run_id,
            dataset.annotations_sha256 if dataset else None,
            dataset.num_images if dataset else None,
            s.backend,  # AP through one backend and precision is compared with the same only
            s.dtype,
        )
    return (record.run_id, s.device_name, s.backend, s.dtype, s.batch_size, input_size(record), s.timed)


def _same_release(claim: Claim, a: ResultRecord, b: ResultRecord) -> str | None:
    """Why two evaluation records are not the same released weights of the claim (None: they are)."""
    if a.model.random_init or b.model.random_init:
        return "random-init weights: an accuracy comparison needs released weights"
    releases = {r.model.name: weights_release(r) for r in (a, b)}
    unknown = [name for name, rel in releases.items() if rel is None]
    if unknown:
        return f"{UNKNOWN_ORIGIN} for {', '.join(unknown)}"
    if releases[a.model.name] != releases[b.model.name]:
        mixed = ", ".join(f"{name} {rel}" for name, rel in releases.items())
        return f"mixed weights releases ({mixed}): the claim compares one release"
    wanted = claim.release or "coco"
    if releases[a.model.name] != wanted:
        return f"both with {releases[a.model.name]} weights; the claim is about the {wanted} release"
    return None


def _relative_conditions(
    claim: Claim, a: ResultRecord, b: ResultRecord, conditions: ClaimConditions
) -> str | None:
    if a.task in ("latency", "throughput"):
        for r in (a, b):
            if why := unsteady(r):
                return f"{r.model.name}: {why}"
    for cond in claim.conditions:
        if cond == "gpu" and not str(a.setup.device).startswith("cuda"):
            return f"measured on {a.setup.device_name or a.setup.device}; the claim is about GPU inference"
        if cond == "real_weights" and (why := _same_release(claim, a, b)):
            return why
        if cond == "coco":
            for r in (a, b):
                if why := coco_conditions(r, conditions):
                    return f"{r.model.name}: {why}"
    return None


def _relation(claim: Claim, va: float, vb: float) -> tuple[bool, float, float | None, str]:
    """(holds, measured, delta, reason) for the claim's relation on measured values."""
    unit = f" {claim.unit}" if claim.unit not in ("", "ratio") else ""
    both = f"{claim.a} {va:.4g}{unit} vs {claim.b} {vb:.4g}{unit}"
    if claim.relation == "less":
        return va < vb, va - vb, None, both
    if claim.relation == "greater":
        return va > vb, va - vb, None, both
    assert claim.claimed is not None
    measured = vb - va if claim.relation == "gain" else (va / vb if vb else float("inf"))
    delta = measured - claim.claimed
    return abs(delta) <= (claim.tolerance or 0.0) + 1e-9, measured, delta, both


def _needs_significance(claim: Claim) -> bool:
    """An ordering of AP-like stats ("X beats Y"): judged on the paired bootstrap, not the two numbers."""
    return claim.relation in ("less", "greater") and claim.metric in _PAIRED_STATS


def _significance(claim: Claim, a: ResultRecord, b: ResultRecord, both: str) -> tuple[str, str]:
    """(verdict, reason) of an AP ordering: ``pass`` only when the paired interval of A - B excludes
    zero in the claimed direction, ``fail`` when it excludes zero the other way, else ``not
    significant``; ``not comparable`` when the records do not pair (other images, no bootstrap)."""
    # deferred: the evaluation package loads torch, and `import dfine_bench.claims` must not
    from dfine_bench.evaluation.paired import paired_difference, pairing_problem

    problem = pairing_problem(a, b)
    if problem:
        return "not comparable", f"{both}: no paired comparison ({problem})"
    diff = paired_difference(a, b, claim.metric)
    wanted = 1 if claim.relation == "greater" else -1
    level = f"{diff.confidence:.0%}"
    text = (
        f"{both}; {claim.metric} {claim.a} - {claim.b} {diff.text()} ({level} paired bootstrap over images)"
    )
    if diff.direction == wanted:
        return "pass", text
    if diff.direction == -wanted:
        return "fail", text
    return NOT_SIGNIFICANT, f"not significant on these images: {text}"


#: each model's records of the claim's task, by the context they were measured in (``_context``)
_Side = dict[tuple[object, ...], list[ResultRecord]]


def relative_results(
    claim: Claim, records: Sequence[ResultRecord], registered: set[str] | None, conditions: ClaimConditions
) -> list[ClaimResult]:
    task = task_of_metric(claim.metric)
    a_name, b_name = claim.a or "", claim.b or ""
    side = _sides(claim, records, task, (a_name, b_name))
    shared = [ctx for ctx in side[a_name] if ctx in side[b_name]]
    if not shared:
        reason = _never_together(claim, records, registered, task, side)
        return [ClaimResult(claim=claim, verdict="not measured", reason=reason)]
    return [_pair_result(claim, side[a_name][ctx], side[b_name][ctx], conditions) for ctx in shared]


def _sides(
    claim: Claim, records: Sequence[ResultRecord], task: str, names: tuple[str, str]
) -> dict[str, _Side]:
    """Model name -> its records measuring the claim's metric, grouped by context."""
    side: dict[str, _Side] = {name: defaultdict(list) for name in names}
    for r in records:
        if r.task == task and r.model.name in side and measured_value(r, claim.metric) is not None:
            side[r.model.name][_context(r)].append(r)
    return side


def _never_together(
    claim: Claim,
    records: Sequence[ResultRecord],
    registered: set[str] | None,
    task: str,
    side: dict[str, _Side],
) -> str:
    """Why the two models share no context: one is not registered, has no usable record, or the
    two were measured in different runs or conditions."""
    missing = [m for m in (claim.a or "", claim.b or "") if not side[m]]
    unregistered = [m for m in missing if registered is not None and m not in registered]
    if unregistered:
        return (
            f"no adapter named {', '.join(unregistered)} is registered; a plug-in registering it "
            "(entry point dfine_bench.adapters) makes this claim checkable"
        )
    if missing:
        detail = "; ".join(not_ok(records, task, m) or f"no {m} record" for m in missing)
        return f"needs {claim.a} and {claim.b} in the same run; {detail}"
    return f"{claim.a} and {claim.b} were never measured in the same run under the same conditions"


def _pair_result(
    claim: Claim, a_records: list[ResultRecord], b_records: list[ResultRecord], conditions: ClaimConditions
) -> ClaimResult:
    """The claim judged on one shared context's records of A and B."""
    # several records per side (e.g. two weights releases): the first pair meeting the
    # claim's conditions, else the first pair, shown with why it is not comparable
    pairs = [(x, y, _relative_conditions(claim, x, y, conditions)) for x in a_records for y in b_records]
    a, b, why = next((p for p in pairs if p[2] is None), pairs[0])
    va, vb = measured_value(a, claim.metric), measured_value(b, claim.metric)
    assert va is not None and vb is not None
    holds, measured, delta, both = _relation(claim, va, vb)
    if why:
        verdict, reason = "not comparable", f"{both}: {why}"
    elif _needs_significance(claim):
        verdict, reason = _significance(claim, a, b, both)
    else:
        verdict, reason = ("pass" if holds else "fail"), both
    return claim_result(
        claim,
        verdict,
        reason,
        a,
        measured=measured,
        delta=delta,
        record_ids=(a.record_id, b.record_id),
    )
