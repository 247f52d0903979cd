"""Checking claims against result records: one ``ClaimResult`` per claim and run (or context).

Verdicts: ``pass`` and ``fail`` only where the records were measured under the claim's
conditions; ``not comparable`` where a measurement exists but under other conditions
(random-init weights or weights of unknown origin, generated data, a subset of COCO, another
device, backend or timed span: the measured value is shown beside the reason), or where the
paper's own figure is a known erratum; ``not measured`` where no record bears on it (the reason
says whether a record failed or was skipped). Only records with status ``ok`` count as
measurements.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from dfine_bench.claims.model import Claim, ClaimConditions, ClaimSet, load_claims, task_of_metric
from dfine_bench.errors import DfineBenchError
from dfine_bench.profiling.protocols import accuracy_deviations, device_matches
from dfine_bench.records import deviations as dev
from dfine_bench.records.deviations import read_deviations
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
UNKNOWN_ORIGIN = "weights of unknown origin (not a released checkpoint)"


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


# -- which weights ---------------------------------------------------------------------------------
def weights_release(record: ResultRecord) -> str | None:
    """Which released weights a record used: ``coco``, ``obj2coco``, ``obj365``; None when they are
    no release: random-init (``record.model.random_init`` tells these apart) or of unknown origin.

    The answer is the weights loader's: it writes ``model.extra["weights_release"]`` from the
    model spec's release data (``ModelSpec.releases``), None for anything that is no release (a
    local folder, a renamed file). A record written without a loader (``dfine-bench evaluate
    --weights``, or a record from before the loader kept the tag) is looked up the same way:
    ``get_spec(model).release_of(weights_id)``, never guessed from the id's wording.
    """
    if record.model.random_init:
        return None
    extra = record.model.extra
    if "weights_release" in extra:  # the loader's own answer, None included
        release = extra["weights_release"]
        return str(release) if release else None
    # the loader never gives a local folder a release: it may hold any weights
    if record.model.weights_source == "local" or not record.model.weights_id:
        return None
    from dfine_bench.adapters.registry import get_spec

    try:
        spec = get_spec(record.model.name)
    except DfineBenchError:  # a model this installation does not know: no release data for it
        return None
    return spec.release_of(record.model.weights_id)


# -- helpers ---------------------------------------------------------------------------------------
def _input_size(record: ResultRecord) -> tuple[int, ...] | None:
    size = record.setup.input_size or record.model.input_size
    return tuple(int(s) for s in size) if size else None


def _measured(record: ResultRecord, metric: str) -> float | None:
    """The record's value of ``metric``; None unless the record is ``ok``.

    FPS is derived from the mean latency (``batch_size * 1000 / latency_mean``), not read from
    the record's ``fps`` (which comes from the median): the paper's FPS are its mean latencies
    inverted (abstract: 124 FPS = 1000 / 8.07 ms), so a median-based FPS would test another
    statistic than the one claimed. Kept rather than dropped because the FPS figures are the
    abstract's headline claims.
    """
    if record.status != "ok":
        return None
    if metric == "fps":
        mean = record.value("latency_mean")
        return record.setup.batch_size * 1000.0 / mean if mean else None
    return record.value(metric)


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


def _not_ok(
    records: Iterable[ResultRecord],
    task: str,
    model: str,
    keep: Callable[[ResultRecord], bool] = lambda r: True,
) -> str | None:
    """Why ``model``'s ``task`` records (those ``keep`` accepts) are no measurement: the failed or
    skipped ones with their reasons; None when there are none."""
    said: list[str] = []
    for r in records:
        if r.task == task and r.model.name == model and r.status != "ok" and keep(r):
            what = "failed" if r.status == "failed" else "was skipped"
            text = f"the {task} record of {model} {what}: {r.reason or 'no reason recorded'}"
            if text not in said:
                said.append(text)
    return "; ".join(said) or None


def _size_text(size: Sequence[int]) -> str:
    return "x".join(map(str, size))


# -- single-model claims --------------------------------------------------------------------------
def _exact(claim: Claim, record: ResultRecord, conditions: ClaimConditions) -> ClaimResult:
    measured = _measured(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    size = _input_size(record)
    if size != conditions.input_size:
        shown = _size_text(size) if size else "an unknown size"
        return _result(
            claim,
            "not comparable",
            f"counted at {shown}; the claim is at {_size_text(conditions.input_size)}",
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


def _coco_conditions(record: ResultRecord, conditions: ClaimConditions) -> str | None:
    """Why an evaluation record is not on the claim's data (full COCO val2017 at its input size)."""
    dataset = record.dataset
    if dataset is None:
        return "no dataset recorded, not COCO val2017"
    why = accuracy_deviations(
        dataset.name,
        dataset.num_images,
        dataset.generated,
        _input_size(record),
        None,
        coco_images=conditions.coco_images,
        reference_size=conditions.input_size,
        annotations_sha256=dataset.annotations_sha256,
        check_annotations=True,  # COCO val2017 is its annotation file's hash, not a name or a count
    )
    return why[0].text if why else None


def _accuracy_conditions(record: ResultRecord, conditions: ClaimConditions) -> str | None:
    """Why an evaluation record cannot stand for the model's released accuracy (None: it can)."""
    if record.model.random_init:
        return "random-init weights: not the model's accuracy"
    if weights_release(record) is None:
        return f"{UNKNOWN_ORIGIN}: {record.model.weights_id or 'no weights id recorded'}"
    return _coco_conditions(record, conditions)


def _tolerance(claim: Claim, record: ResultRecord, conditions: ClaimConditions) -> ClaimResult | None:
    measured = _measured(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    release = weights_release(record)
    if release is not None and release != claim.release:
        return None  # another release's claim row covers this record
    why = _accuracy_conditions(record, conditions)
    if why is not None:
        return _result(claim, "not comparable", why, record, measured=measured)
    delta = measured - claim.claimed
    ok = abs(delta) <= (claim.tolerance or 0.0) + 1e-9
    reason = (
        f"within {claim.tolerance:g} AP" if ok else f"off by {delta:+.2f} AP (tolerance {claim.tolerance:g})"
    )
    return _result(claim, "pass" if ok else "fail", reason, record, measured=measured, delta=delta)


def _unsteady(record: ResultRecord) -> str | None:
    """Why a timing cannot be judged however it was set up: it was marked throttled (the GPU slowed
    itself down) or unstable (noisy samples, a busy machine) when it was measured."""
    stability = record.setup.extra.get("stability")
    if stability not in ("unstable", "throttled"):
        return None
    validity = record.details.get("validity") or {}
    reasons = "; ".join(str(r) for r in validity.get("reasons", [])) or "no reason recorded"
    return f"the timing was marked {stability} when measured ({reasons}): excluded from verdicts"


def _hardware_deviation(record: ResultRecord, conditions: ClaimConditions) -> str | None:
    s = record.setup
    if not device_matches(s.device_name, conditions.device):
        return f"measured on {s.device_name or s.device}, not an NVIDIA {conditions.device}"
    if (s.backend, s.dtype) != (conditions.backend, conditions.dtype):
        return f"measured with {s.backend} {s.dtype}, not {conditions.backend} {conditions.dtype}"
    if s.batch_size != conditions.batch_size:
        return f"batch size {s.batch_size}, not {conditions.batch_size}"
    size = _input_size(record)
    if size is not None and size != conditions.input_size:
        return f"input {_size_text(size)}, not {_size_text(conditions.input_size)}"
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
    return _unsteady(record)


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
    measured = _measured(record, claim.metric)
    assert measured is not None and claim.claimed is not None
    why = _hardware_deviation(record, conditions)
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
    if claim.metric == "fps":
        reason += (
            f"; FPS = 1000 / this record's mean latency ({record.value('latency_mean'):.3f} ms), "
            "as the paper derives it (the record's own fps uses the median)"
        )
    notes = _input_notes(record)
    if notes:
        reason += "; note: " + "; ".join(notes)
    return _result(claim, "pass" if ok else "fail", reason, record, measured=measured, delta=delta)


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
            if r.task == task and r.model.name == claim.model and _measured(r, claim.metric) is not None
        ]
        if claim.kind == "hardware":
            found = [r for r in found if r.setup.batch_size == conditions.batch_size]
            if found:
                out.append(_hardware(claim, found, conditions))
            continue
        if claim.kind == "tolerance":  # the paper's AP: of the model itself, not of an export
            found = [r for r in found if _eager_fp32(r)]
        for record in found:
            result = (
                _exact(claim, record, conditions)
                if claim.kind == "exact"
                else _tolerance(claim, record, conditions)
            )
            if result is not None:
                out.append(result)
    return [_erratum(claim, r) for r in out]


def _eager_fp32(record: ResultRecord) -> bool:
    """Whether an evaluation ran the model itself in fp32 (not through ``evaluation.backends``' others)."""
    return (record.setup.backend, record.setup.dtype) == ("eager", "fp32")


def _not_measured(
    claim: Claim, records: Sequence[ResultRecord], known: set[str], conditions: ClaimConditions
) -> ClaimResult:
    """Why no record bears on a single-model claim, as precisely as the records allow."""
    task = _TASK_OF_KIND[claim.kind]
    model = claim.model or ""

    def relevant(r: ResultRecord) -> bool:
        if claim.kind == "hardware":
            return r.setup.batch_size == conditions.batch_size
        if claim.kind == "tolerance":
            return weights_release(r) in (None, claim.release)
        return True

    releases = {
        release
        for r in records
        if r.task == task and r.model.name == model and r.status == "ok"
        if (release := weights_release(r)) not in (None, claim.release)
    }
    if model not in known:
        why = f"no adapter named {model} is registered"
    elif broken := _not_ok(records, task, model, relevant):
        why = broken
    elif releases:
        why = (
            f"{model} was evaluated with the {', '.join(sorted(releases))} weights only; "
            f"this claim is about the {claim.release} release"
        )
    elif claim.kind == "tolerance" and (
        other := sorted(
            {
                f"{r.setup.backend} {r.setup.dtype}"
                for r in records
                if r.task == task and r.model.name == model and r.status == "ok" and not _eager_fp32(r)
            }
        )
    ):
        why = f"{model}'s {claim.metric} was measured through {', '.join(other)} only, not eager fp32"
    else:
        why = f"no {task} record of {model} with {claim.metric}"
    return ClaimResult(claim=claim, verdict="not measured", reason=why)


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
            s.backend,  # AP through one backend and precision is compared with the same only
            s.dtype,
        )
    return (record.run_id, s.device_name, s.backend, s.dtype, s.batch_size, _input_size(record), s.timed)


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
            if why := _unsteady(r):
                return f"{r.model.name}: {why}"
    for cond in claim.conditions:
        if cond == "gpu" and not str(a.setup.device).startswith("cuda"):
            return f"measured on {a.setup.device_name or a.setup.device}; the claim is about GPU inference"
        if cond == "real_weights" and (why := _same_release(claim, a, b)):
            return why
        if cond == "coco":
            for r in (a, b):
                if why := _coco_conditions(r, conditions):
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


def _relative(
    claim: Claim, records: Sequence[ResultRecord], registered: set[str] | None, conditions: ClaimConditions
) -> list[ClaimResult]:
    task = task_of_metric(claim.metric)
    a_name, b_name = claim.a or "", claim.b or ""
    side: dict[str, dict[tuple[object, ...], list[ResultRecord]]] = {
        a_name: defaultdict(list),
        b_name: defaultdict(list),
    }
    for r in records:
        if r.task == task and r.model.name in side and _measured(r, claim.metric) is not None:
            side[r.model.name][_context(r)].append(r)
    shared = [ctx for ctx in side[a_name] if ctx in side[b_name]]
    if not shared:
        missing = [m for m in (a_name, b_name) if not side[m]]
        unregistered = [m for m in missing if registered is not None and m not in registered]
        if unregistered:
            reason = (
                f"no adapter named {', '.join(unregistered)} is registered; a plug-in registering it "
                "(entry point dfine_bench.adapters) makes this claim checkable"
            )
        elif missing:
            detail = "; ".join(_not_ok(records, task, m) or f"no {m} record" for m in missing)
            reason = f"needs {claim.a} and {claim.b} in the same run; {detail}"
        else:
            reason = f"{claim.a} and {claim.b} were never measured in the same run under the same conditions"
        return [ClaimResult(claim=claim, verdict="not measured", reason=reason)]
    out = []
    for ctx in shared:
        # several records per side (e.g. two weights releases): the first pair meeting the
        # claim's conditions, else the first pair, shown with why it is not comparable
        pairs = [
            (x, y, _relative_conditions(claim, x, y, conditions))
            for x in side[a_name][ctx]
            for y in side[b_name][ctx]
        ]
        a, b, why = next((p for p in pairs if p[2] is None), pairs[0])
        va, vb = _measured(a, claim.metric), _measured(b, claim.metric)
        assert va is not None and vb is not None
        holds, measured, delta, both = _relation(claim, va, vb)
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
            results.extend(_relative(claim, records, known, claim_set.protocol))
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
