"""What checking a claim produces and the record readings every kind of claim shares.

``ClaimResult`` is one claim's outcome; ``weights_release`` says which released weights a record
used; ``measured_value`` reads a record's value the way claims compare it (FPS from the mean
latency); ``coco_conditions`` and ``unsteady`` say why a record cannot stand for a claim's data or
timing. ``check`` (single-model claims) and ``relative`` (pairs of models) build on these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from dfine_bench.adapters.registry import get_spec
from dfine_bench.claims.model import Claim, ClaimConditions
from dfine_bench.errors import DfineBenchError
from dfine_bench.profiling.protocols import accuracy_deviations
from dfine_bench.records.schema import ResultRecord

UNKNOWN_ORIGIN = "weights of unknown origin (not a released checkpoint)"
#: The verdict of an AP ordering whose paired interval holds zero (``relative``).
NOT_SIGNIFICANT = "not significant"


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

    try:
        spec = get_spec(record.model.name)
    except DfineBenchError:  # a model this installation does not know: no release data for it
        return None
    return spec.release_of(record.model.weights_id)


# -- helpers ---------------------------------------------------------------------------------------
def input_size(record: ResultRecord) -> tuple[int, ...] | None:
    size = record.setup.input_size or record.model.input_size
    return tuple(int(s) for s in size) if size else None


def measured_value(record: ResultRecord, metric: str) -> float | None:
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


def claim_result(
    claim: Claim, verdict: str, reason: str, record: ResultRecord | None = None, **kw: object
) -> ClaimResult:
    if record is not None:
        kw.setdefault("run_id", record.run_id)
        kw.setdefault("device_name", record.setup.device_name)
        kw.setdefault("backend", record.setup.backend)
        kw.setdefault("dtype", record.setup.dtype)
        kw.setdefault("record_ids", (record.record_id,))
    return ClaimResult(claim=claim, verdict=verdict, reason=reason, **kw)  # type: ignore[arg-type]


def not_ok(
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


def size_text(size: Sequence[int]) -> str:
    return "x".join(map(str, size))


def coco_conditions(record: ResultRecord, conditions: ClaimConditions) -> str | None:
    """Why an evaluation record is not on the claim's data (full COCO val2017 at its input size)."""
    dataset = record.dataset
    if dataset is None:
        return "no dataset recorded, not COCO val2017"
    why = accuracy_deviations(
        dataset.name,
        dataset.num_images,
        dataset.generated,
        input_size(record),
        None,
        coco_images=conditions.coco_images,
        reference_size=conditions.input_size,
        annotations_sha256=dataset.annotations_sha256,
        check_annotations=True,  # COCO val2017 is its annotation file's hash, not a name or a count
    )
    return why[0].text if why else None


def unsteady(record: ResultRecord) -> str | None:
    """Why a timing cannot be judged however it was set up: it was marked throttled (the GPU slowed
    itself down) or unstable (noisy samples, a busy machine) when it was measured."""
    stability = record.setup.extra.get("stability")
    if stability not in ("unstable", "throttled"):
        return None
    validity = record.details.get("validity") or {}
    reasons = "; ".join(str(r) for r in validity.get("reasons", [])) or "no reason recorded"
    return f"the timing was marked {stability} when measured ({reasons}): excluded from verdicts"
