"""Checking claims against result records: one ``ClaimResult`` per claim and run (or context).

Verdicts: ``pass`` and ``fail`` only where the records were measured under the claim's
conditions; ``not comparable`` where a measurement exists but under other conditions
(random-init weights or weights of unknown origin, generated data, a subset of COCO, another
device, backend or timed span: the measured value is shown beside the reason), or where the
paper's own figure is a known erratum; ``not measured`` where no record bears on it (the reason
says whether a record failed or was skipped). Only records with status ``ok`` count as
measurements, and a timing marked unstable or throttled when it was measured is never judged.
A claim marked ``unmeasurable`` (no record here can ever decide it: the paper's weights were never
released, a quantity no record measures) is "not measured" with its reason whatever the records;
its ``evidence`` (a committed small-scale result) goes in the ``evidence`` column, never the verdict.

This module checks single-model claims (exact, tolerance, hardware) and is the entry point
(``check_claims``); relative claims between two models are ``relative.py``, what every kind
shares (``ClaimResult``, reading a record) is ``result.py``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from dfine_bench.adapters.registry import list_models
from dfine_bench.claims.evidence import evidence_text
from dfine_bench.claims.model import Claim, ClaimConditions, ClaimSet, load_claims
from dfine_bench.claims.relative import relative_results
from dfine_bench.claims.result import (
    UNKNOWN_ORIGIN,
    ClaimResult,
    claim_result,
    coco_conditions,
    input_size,
    measured_value,
    not_ok,
    size_text,
    unsteady,
    weights_release,
)
from dfine_bench.profiling.protocols import device_matches
from dfine_bench.records import deviations as dev
from dfine_bench.records.deviations import read_deviations
from dfine_bench.records.schema import ResultRecord

VERDICTS = ("pass", "fail", "not significant", "not comparable", "not measured")
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
    "evidence",
)
_TASK_OF_KIND = {"exact": "complexity", "tolerance": "evaluation", "hardware": "latency"}


# -- single-model claims --------------------------------------------------------------------------
def _exact(claim: Claim, record: ResultRecord, conditions: ClaimConditions) -> ClaimResult:
    measured = measured_value(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    size = input_size(record)
    if size != conditions.input_size:
        shown = size_text(size) if size else "an unknown size"
        return claim_result(
            claim,
            "not comparable",
            f"counted at {shown}; the claim is at {size_text(conditions.input_size)}",
            record,
            measured=measured,
        )
    if claim.counted_elsewhere:
        why = (
            f"the paper quotes this model's {claim.metric} from its own authors, who counted with "
            "another tool; shown for reference"
        )
        delta = measured - claim.claimed
        return claim_result(claim, "not comparable", why, record, measured=measured, delta=delta)
    rounded = round(measured, claim.decimals)
    ok = rounded == round(claim.claimed, claim.decimals)
    digits = max(claim.decimals, 2)
    reason = f"{measured:.{digits + 1}f} rounds to {rounded:.{claim.decimals}f} (the paper's precision)"
    return claim_result(
        claim, "pass" if ok else "fail", reason, record, measured=measured, delta=measured - claim.claimed
    )


def _accuracy_conditions(record: ResultRecord, conditions: ClaimConditions) -> str | None:
    """Why an evaluation record cannot stand for the model's released accuracy (None: it can)."""
    if record.model.random_init:
        return "random-init weights: not the model's accuracy"
    if weights_release(record) is None:
        return f"{UNKNOWN_ORIGIN}: {record.model.weights_id or 'no weights id recorded'}"
    return coco_conditions(record, conditions)


def _tolerance(claim: Claim, record: ResultRecord, conditions: ClaimConditions) -> ClaimResult | None:
    measured = measured_value(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    release = weights_release(record)
    if release is not None and release != claim.release:
        return None  # another release's claim row covers this record
    why = _accuracy_conditions(record, conditions)
    if why is not None:
        return claim_result(claim, "not comparable", why, record, measured=measured)
    delta = measured - claim.claimed
    ok = abs(delta) <= (claim.tolerance or 0.0) + 1e-9
    reason = (
        f"within {claim.tolerance:g} AP" if ok else f"off by {delta:+.2f} AP (tolerance {claim.tolerance:g})"
    )
    return claim_result(claim, "pass" if ok else "fail", reason, record, measured=measured, delta=delta)


def _hardware_deviation(record: ResultRecord, conditions: ClaimConditions) -> str | None:
    s = record.setup
    if not device_matches(s.device_name, conditions.device):
        return f"measured on {s.device_name or s.device}, not an NVIDIA {conditions.device}"
    if (s.backend, s.dtype) != (conditions.backend, conditions.dtype):
        return f"measured with {s.backend} {s.dtype}, not {conditions.backend} {conditions.dtype}"
    if s.batch_size != conditions.batch_size:
        return f"batch size {s.batch_size}, not {conditions.batch_size}"
    size = input_size(record)
    if size is not None and size != conditions.input_size:
        return f"input {size_text(size)}, not {size_text(conditions.input_size)}"
    if s.timed != conditions.timed:
        wanted = {
            "model": "the model alone (without pre- or postprocessing)",
            "model+postprocess": (
                "the deploy engine (the paper times the model with its top-k postprocessor in the engine: "
                "profiling.timed=model+postprocess)"
            ),
        }.get(conditions.timed, conditions.timed)
        return f"timed {s.timed or 'an unrecorded span'}, not {wanted}"
    if s.timed == "model+postprocess" and s.extra.get("graph") == "model":
        return "the postprocessor ran in Python after the backend, not inside the engine as the paper's"
    return unsteady(record)


def _input_notes(record: ResultRecord) -> list[str]:
    """What a comparable latency record still lists as deviating from the paper, beyond its setup
    (``dev.SETUP_CODES``, judged by ``_hardware_deviation``): in practice the input kind (a fixed
    tensor instead of COCO images), which does not change the verdict."""
    notes = []
    for d in read_deviations(record.setup.deviations):
        if d.code in dev.SETUP_CODES:
            continue
        text = d.text
        if d.code == dev.INPUT_KIND and d.actual == "fixed":
            text += " (the paper feeds COCO images; latency barely depends on the content for these models)"
        notes.append(text)
    return notes


def _hardware(claim: Claim, records: list[ResultRecord], conditions: ClaimConditions) -> ClaimResult:
    """The comparable record if there is one; else the closest one, shown as not comparable."""
    ranked = sorted(
        records, key=lambda r: (_hardware_deviation(r, conditions) is not None, len(r.setup.deviations))
    )
    record = ranked[0]
    measured = measured_value(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    why = _hardware_deviation(record, conditions)
    if why is not None:
        return claim_result(
            claim, "not comparable", f"not comparable on this hardware: {why}", record, measured=measured
        )
    delta = measured - claim.claimed
    ok = abs(delta) <= (claim.tolerance or 0.0) * claim.claimed
    device = record.setup.device_name
    reason = f"within {claim.tolerance:.0%} on {device}"
    if not ok:
        reason = f"{delta / claim.claimed:+.1%} from the claim on {device} (tolerance {claim.tolerance:.0%})"
    if claim.metric == "fps":
        reason += (
            f"; FPS = 1000 / this record's mean latency ({record.value('latency_mean'):.3f} ms), "
            "as the paper derives it (the record's own fps uses the median)"
        )
    notes = _input_notes(record)
    if notes:
        reason += "; note: " + "; ".join(notes)
    return claim_result(claim, "pass" if ok else "fail", reason, record, measured=measured, delta=delta)


def _erratum(claim: Claim, result: ClaimResult) -> ClaimResult:
    """A judged result of a claim whose printed figure is a known erratum: shown, not judged."""
    if not claim.erratum or result.verdict not in ("pass", "fail"):
        return result
    reason = f"known discrepancy in the paper: {claim.erratum} (measured: {result.reason})"
    return dataclasses.replace(result, verdict="not comparable", reason=reason)


def _single(
    claim: Claim, by_run: dict[str, list[ResultRecord]], conditions: ClaimConditions
) -> list[ClaimResult]:
    task = _TASK_OF_KIND[claim.kind]
    out: list[ClaimResult] = []
    for run_records in by_run.values():
        found = [
            r
            for r in run_records
            if r.task == task and r.model.name == claim.model and measured_value(r, claim.metric) is not None
        ]
        out += _run_results(claim, found, conditions)
    return [_erratum(claim, r) for r in out]


def _run_results(claim: Claim, found: list[ResultRecord], conditions: ClaimConditions) -> list[ClaimResult]:
    """One run's results of a single-model claim, from the run's records that measure its metric."""
    if claim.kind == "hardware":  # one result per run: the comparable record, else the closest
        found = [r for r in found if r.setup.batch_size == conditions.batch_size]
        return [_hardware(claim, found, conditions)] if found else []
    if claim.kind == "tolerance":  # the paper's AP: of the model itself, not of an export
        judged = (_tolerance(claim, r, conditions) for r in found if _eager_fp32(r))
        return [result for result in judged if result is not None]
    return [_exact(claim, r, conditions) for r in found]


def _eager_fp32(record: ResultRecord) -> bool:
    """Whether an evaluation ran the model itself in fp32 (not through ``evaluation.backends``' others)."""
    return (record.setup.backend, record.setup.dtype) == ("eager", "fp32")


def _not_measured(
    claim: Claim, records: Sequence[ResultRecord], known: set[str], conditions: ClaimConditions
) -> ClaimResult:
    """Why no record bears on a single-model claim, as precisely as the records allow."""
    task = _TASK_OF_KIND[claim.kind]
    model = claim.model or ""
    if model not in known:
        why = f"no adapter named {model} is registered"
    else:
        why = (
            not_ok(records, task, model, _relevance(claim, conditions))
            or _other_releases_only(claim, records, task, model)
            or _other_backends_only(claim, records, task, model)
            or f"no {task} record of {model} with {claim.metric}"
        )
    return ClaimResult(claim=claim, verdict="not measured", reason=why)


def _relevance(claim: Claim, conditions: ClaimConditions) -> Callable[[ResultRecord], bool]:
    """Which failed or skipped records bear on the claim (and so explain why it is not measured)."""

    def relevant(r: ResultRecord) -> bool:
        if claim.kind == "hardware":
            return r.setup.batch_size == conditions.batch_size
        if claim.kind == "tolerance":
            return weights_release(r) in (None, claim.release)
        return True

    return relevant


def _ok_records(records: Sequence[ResultRecord], task: str, model: str) -> list[ResultRecord]:
    return [r for r in records if r.task == task and r.model.name == model and r.status == "ok"]


def _other_releases_only(claim: Claim, records: Sequence[ResultRecord], task: str, model: str) -> str | None:
    """The model was measured, but only with weights of releases other than the claim's."""
    releases = {
        release
        for r in _ok_records(records, task, model)
        if (release := weights_release(r)) not in (None, claim.release)
    }
    if not releases:
        return None
    return (
        f"{model} was evaluated with the {', '.join(sorted(releases))} weights only; "
        f"this claim is about the {claim.release} release"
    )


def _other_backends_only(claim: Claim, records: Sequence[ResultRecord], task: str, model: str) -> str | None:
    """An accuracy claim whose model was evaluated only through other backends or dtypes than eager fp32."""
    if claim.kind != "tolerance":
        return None
    other = sorted(
        {
            f"{r.setup.backend} {r.setup.dtype}"
            for r in _ok_records(records, task, model)
            if not _eager_fp32(r)
        }
    )
    if not other:
        return None
    return f"{model}'s {claim.metric} was measured through {', '.join(other)} only, not eager fp32"


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
        registered = list_models()
    known = set(registered)
    by_run: dict[str, list[ResultRecord]] = defaultdict(list)
    for r in records:
        by_run[r.run_id].append(r)
    results: list[ClaimResult] = []
    for claim in claim_set:
        if claim.unmeasurable:
            reason = f"cannot be measured here: {claim.unmeasurable}"
            results.append(ClaimResult(claim=claim, verdict="not measured", reason=reason))
            continue
        if claim.kind == "relative":
            results.extend(relative_results(claim, records, known, claim_set.protocol))
            continue
        found = _single(claim, by_run, claim_set.protocol)
        results.extend(found or [_not_measured(claim, records, known, claim_set.protocol)])
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
            "evidence": evidence_text(r.claim.evidence, r.claim.metric),
        }
        for r in results
    ]
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def verdict_counts(results: Sequence[ClaimResult] | pd.DataFrame) -> dict[str, int]:
    """How many results have each verdict, in ``VERDICTS`` order with zeros included.

    Takes the results or their ``claims_frame`` (what the claims gate and report tables hold),
    so that every summary counts the same way.
    """
    verdicts = (
        [str(v) for v in results["verdict"]]
        if isinstance(results, pd.DataFrame)
        else [r.verdict for r in results]
    )
    unknown = sorted(set(verdicts) - set(VERDICTS))
    if unknown:
        raise ValueError(f"unknown verdict(s) {', '.join(unknown)}; verdicts are {', '.join(VERDICTS)}")
    return {v: verdicts.count(v) for v in VERDICTS}
