"""Checking claims against result records: one ``ClaimResult`` per claim and run (or context).

Verdicts: ``pass`` and ``fail`` only where the records were measured under the claim's
conditions; ``not comparable`` where a measurement exists but under other conditions
(random-init weights, generated data, a subset of COCO, another device or backend: the
measured value is shown beside the reason); ``not measured`` where no record bears on it.
Only records with status ``ok`` count as measurements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from dfine_bench.claims.model import Claim, ClaimSet, Protocol, load_claims
from dfine_bench.profiling.protocols import device_matches
from dfine_bench.records.schema import ResultRecord

VERDICTS = ("pass", "fail", "not comparable", "not measured")
CLAIM_COLUMNS = (
    "claim_id",
    "source",
    "model",
    "metric",
    "unit",
    "kind",
    "claimed",
    "measured",
    "delta",
    "verdict",
    "reason",
    "device_name",
    "backend",
    "dtype",
    "run_id",
    "text",
)
_TASK_OF_KIND = {"exact": "complexity", "tolerance": "evaluation", "hardware": "latency"}


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of one claim against the records of one run (and, for latency, one backend)."""

    claim: Claim
    verdict: str
    reason: str
    measured: float | None = None
    delta: float | None = None
    run_id: str | None = None
    device_name: str | None = None
    backend: str | None = None
    dtype: str | None = None
    record_ids: tuple[str, ...] = ()


def weights_release(record: ResultRecord) -> str | None:
    """Which released weights a record used: ``coco``, ``obj2coco``, ``obj365``; None for random-init.

    Read from the hub id or file name (``dfine_l_obj2coco_e25``; RT-DETR's ``..._coco_o365`` is
    Objects365-pretrained, COCO-finetuned); a name with neither marker counts as COCO weights.
    """
    if record.model.random_init:
        return None
    ident = (record.model.weights_id or "").lower()
    if "obj2coco" in ident or ("o365" in ident and "coco" in ident):
        return "obj2coco"
    if "obj365" in ident or "o365" in ident:
        return "obj365"
    return "coco"


def _input_size(record: ResultRecord) -> tuple[int, ...] | None:
    size = record.setup.input_size or record.model.input_size
    return tuple(int(s) for s in size) if size else None


def _value(record: ResultRecord, metric: str) -> float | None:
    return record.value(metric) if record.status == "ok" else None


def _result(
    claim: Claim, verdict: str, reason: str, record: ResultRecord | None = None, **kw: object
) -> ClaimResult:
    if record is not None:
        kw.setdefault("run_id", record.run_id)
        kw.setdefault("device_name", record.setup.device_name)
        kw.setdefault("backend", record.setup.backend)
        kw.setdefault("dtype", record.setup.dtype)
        kw.setdefault("record_ids", (record.record_id,))
    return ClaimResult(claim=claim, verdict=verdict, reason=reason, **kw)  # type: ignore[arg-type]


# -- single-model claims --------------------------------------------------------------------------
def _exact(claim: Claim, record: ResultRecord, protocol: Protocol) -> ClaimResult:
    measured = _value(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    size = _input_size(record)
    if size != protocol.input_size:
        shown = "x".join(map(str, size)) if size else "an unknown size"
        return _result(
            claim,
            "not comparable",
            f"counted at {shown}; the claim is at {'x'.join(map(str, protocol.input_size))}",
            record,
            measured=measured,
        )
    if claim.counted_elsewhere:
        why = (
            f"the paper quotes this model's {claim.metric} from its own authors, who counted with "
            "another tool; shown for reference"
        )
        delta = measured - claim.claimed
        return _result(claim, "not comparable", why, record, measured=measured, delta=delta)
    rounded = round(measured, claim.decimals)
    ok = rounded == round(claim.claimed, claim.decimals)
    digits = max(claim.decimals, 2)
    reason = f"{measured:.{digits + 1}f} rounds to {rounded:.{claim.decimals}f} (the paper's precision)"
    return _result(
        claim, "pass" if ok else "fail", reason, record, measured=measured, delta=measured - claim.claimed
    )


def _accuracy_conditions(record: ResultRecord, protocol: Protocol) -> str | None:
    """Why an evaluation record cannot stand for the model's released accuracy (None: it can)."""
    if record.model.random_init:
        return "random-init weights: not the model's accuracy"
    dataset = record.dataset
    if dataset is None or dataset.generated:
        return "generated stand-in dataset, not COCO val2017"
    if "val2017" not in dataset.name or dataset.num_images != protocol.coco_images:
        return (
            f"{dataset.name} with {dataset.num_images} images, not the {protocol.coco_images} of COCO val2017"
        )
    size = _input_size(record)
    if size is not None and size != protocol.input_size:
        return f"input {'x'.join(map(str, size))}, not {'x'.join(map(str, protocol.input_size))}"
    return None


def _tolerance(claim: Claim, record: ResultRecord, protocol: Protocol) -> ClaimResult | None:
    measured = _value(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    release = weights_release(record)
    if release is not None and release != claim.release:
        return None  # another release's claim row covers this record
    why = _accuracy_conditions(record, protocol)
    if why is not None:
        return _result(claim, "not comparable", why, record, measured=measured)
    delta = measured - claim.claimed
    ok = abs(delta) <= (claim.tolerance or 0.0) + 1e-9
    reason = (
        f"within {claim.tolerance:g} AP" if ok else f"off by {delta:+.2f} AP (tolerance {claim.tolerance:g})"
    )
    return _result(claim, "pass" if ok else "fail", reason, record, measured=measured, delta=delta)


def _hardware_deviation(record: ResultRecord, protocol: Protocol) -> str | None:
    s = record.setup
    if not device_matches(s.device_name, protocol.device):
        return f"measured on {s.device_name or s.device}, not an NVIDIA {protocol.device}"
    if (s.backend, s.dtype) != (protocol.backend, protocol.dtype):
        return f"measured with {s.backend} {s.dtype}, not {protocol.backend} {protocol.dtype}"
    if s.batch_size != protocol.batch_size:
        return f"batch size {s.batch_size}, not {protocol.batch_size}"
    size = _input_size(record)
    if size is not None and size != protocol.input_size:
        return f"input {'x'.join(map(str, size))}, not {'x'.join(map(str, protocol.input_size))}"
    return None


def _hardware(claim: Claim, records: list[ResultRecord], protocol: Protocol) -> ClaimResult:
    """The comparable record if there is one; else the closest one, shown as not comparable."""
    ranked = sorted(
        records, key=lambda r: (_hardware_deviation(r, protocol) is not None, len(r.setup.deviations))
    )
    record = ranked[0]
    measured = _value(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    why = _hardware_deviation(record, protocol)
    if why is not None:
        return _result(
            claim, "not comparable", f"not comparable on this hardware: {why}", record, measured=measured
        )
    delta = measured - claim.claimed
    ok = abs(delta) <= (claim.tolerance or 0.0) * claim.claimed
    device = record.setup.device_name
    reason = f"within {claim.tolerance:.0%} on {device}"
    if not ok:
        reason = f"{delta / claim.claimed:+.1%} from the claim on {device} (tolerance {claim.tolerance:.0%})"
    return _result(claim, "pass" if ok else "fail", reason, record, measured=measured, delta=delta)


def _single(claim: Claim, by_run: dict[str, list[ResultRecord]], protocol: Protocol) -> list[ClaimResult]:
    task = _TASK_OF_KIND[claim.kind]
    out: list[ClaimResult] = []
    for run_records in by_run.values():
        found = [
            r
            for r in run_records
            if r.task == task and r.model.name == claim.model and _value(r, claim.metric) is not None
        ]
        if claim.kind == "hardware":
            found = [r for r in found if r.setup.batch_size == 1]
            if found:
                out.append(_hardware(claim, found, protocol))
            continue
        for record in found:
            result = (
                _exact(claim, record, protocol)
                if claim.kind == "exact"
                else _tolerance(claim, record, protocol)
            )
            if result is not None:
                out.append(result)
    return out


# -- relative claims ------------------------------------------------------------------------------
def _context(record: ResultRecord) -> tuple[object, ...]:
    """What two records must share to be compared: same run and the same measuring conditions."""
    s = record.setup
    if record.task == "complexity":
        return (record.run_id, _input_size(record))
    if record.task == "evaluation":
        dataset = record.dataset
        return (
            record.run_id,
            dataset.annotations_sha256 if dataset else None,
            dataset.num_images if dataset else None,
        )
    return (record.run_id, s.device_name, s.backend, s.dtype, s.batch_size, _input_size(record), s.timed)


def _task_of_metric(metric: str) -> str:
    if metric in ("params", "gflops", "gflops_torch"):
        return "complexity"
    if metric.startswith(("AP", "AR")):
        return "evaluation"
    if metric in ("throughput", "max_batch_size"):
        return "throughput"
    return "latency"


def _relative_conditions(claim: Claim, a: ResultRecord, b: ResultRecord) -> str | None:
    for cond in claim.conditions:
        if cond == "gpu" and not str(a.setup.device).startswith("cuda"):
            return f"measured on {a.setup.device_name or a.setup.device}; the claim is about GPU inference"
        if cond == "real_weights" and (a.model.random_init or b.model.random_init):
            return "random-init weights: an accuracy ordering needs released weights"
        if cond == "coco" and any(r.dataset is None or r.dataset.generated for r in (a, b)):
            return "generated stand-in dataset, not COCO val2017"
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


def _relative(
    claim: Claim, records: Sequence[ResultRecord], registered: set[str] | None
) -> list[ClaimResult]:
    task = _task_of_metric(claim.metric)
    side: dict[str, dict[tuple[object, ...], ResultRecord]] = {claim.a or "": {}, claim.b or "": {}}
    for r in records:
        if r.task == task and r.model.name in side and _value(r, claim.metric) is not None:
            side[r.model.name].setdefault(_context(r), r)
    shared = [ctx for ctx in side[claim.a or ""] if ctx in side[claim.b or ""]]
    if not shared:
        missing = [m for m in (claim.a, claim.b) if m and not side[m]]
        unregistered = [m for m in missing if registered is not None and m not in registered]
        if unregistered:
            reason = (
                f"no adapter named {', '.join(unregistered)} is registered; a plug-in registering it "
                "(entry point dfine_bench.adapters) makes this claim checkable"
            )
        elif missing:
            reason = f"needs {claim.a} and {claim.b} in the same run; no {', '.join(missing)} record"
        else:
            reason = f"{claim.a} and {claim.b} were never measured in the same run under the same conditions"
        return [ClaimResult(claim=claim, verdict="not measured", reason=reason)]
    out = []
    for ctx in shared:
        a, b = side[claim.a or ""][ctx], side[claim.b or ""][ctx]
        va, vb = _value(a, claim.metric), _value(b, claim.metric)
        assert va is not None and vb is not None
        holds, measured, delta, both = _relation(claim, va, vb)
        why = _relative_conditions(claim, a, b)
        verdict = "not comparable" if why else ("pass" if holds else "fail")
        reason = f"{both}: {why}" if why else both
        out.append(
            _result(
                claim,
                verdict,
                reason,
                a,
                measured=measured,
                delta=delta,
                record_ids=(a.record_id, b.record_id),
            )
        )
    return out


# -- entry points ---------------------------------------------------------------------------------
def check_claims(
    claims: ClaimSet | str,
    records: Iterable[ResultRecord],
    *,
    registered: Iterable[str] | None = None,
) -> list[ClaimResult]:
    """Every claim against ``records``. ``registered`` (default: the model registry) names the
    models that could be measured, so a claim about an unknown model says why it is not measured."""
    claim_set = load_claims(claims) if isinstance(claims, str) else claims
    records = list(records)
    if registered is None:
        from dfine_bench.adapters.registry import list_models

        registered = list_models()
    known = set(registered)
    by_run: dict[str, list[ResultRecord]] = defaultdict(list)
    for r in records:
        by_run[r.run_id].append(r)
    results: list[ClaimResult] = []
    for claim in claim_set:
        if claim.kind == "relative":
            results.extend(_relative(claim, records, known))
            continue
        found = _single(claim, by_run, claim_set.protocol)
        if not found:
            task = _TASK_OF_KIND[claim.kind]
            why = f"no {task} record of {claim.model} with {claim.metric}"
            releases = {
                weights_release(r) for r in records if r.task == task and r.model.name == claim.model
            } - {None, claim.release}
            if releases:
                why = (
                    f"{claim.model} was evaluated with the {', '.join(sorted(releases))} weights only; "
                    f"this claim is about the {claim.release} release"
                )
            if claim.model not in known:
                why = f"no adapter named {claim.model} is registered"
            found = [ClaimResult(claim=claim, verdict="not measured", reason=why)]
        results.extend(found)
    return results


def claims_frame(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """The results as a table with ``CLAIM_COLUMNS`` (one row per result)."""
    rows = [
        {
            "claim_id": r.claim.id,
            "source": r.claim.source,
            "model": r.claim.subject,
            "metric": r.claim.metric,
            "unit": r.claim.unit,
            "kind": r.claim.kind,
            "claimed": r.claim.claimed,
            "measured": r.measured,
            "delta": r.delta,
            "verdict": r.verdict,
            "reason": r.reason,
            "device_name": r.device_name,
            "backend": r.backend,
            "dtype": r.dtype,
            "run_id": r.run_id,
            "text": r.claim.describe(),
        }
        for r in results
    ]
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def verdict_counts(results: Sequence[ClaimResult]) -> dict[str, int]:
    """How many results have each verdict (every verdict present, zeros included)."""
    counts = dict.fromkeys(VERDICTS, 0)
    for r in results:
        counts[r.verdict] += 1
    return counts
