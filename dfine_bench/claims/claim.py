"""The claim types: ``Claim``, ``ClaimSet``, ``ClaimConditions``, and the words a claim may use.

What a claim is (its kind, relation, conditions, release) lives here; reading and checking a
claims file is ``dfine_bench.claims.model`` (which re-exports these names).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dfine_bench.profiling.protocols import PAPER_COCO_IMAGES, PAPER_T4
from dfine_bench.records.metrics import CLAIM_KINDS, get_metric, list_metrics

#: How a claim is checked (see ``dfine_bench.claims.check``): the catalogue's claim kinds + relative.
KINDS = (*CLAIM_KINDS, "relative")


def row_metric_kinds() -> dict[str, str]:
    """Row metrics and the kind each implies: every catalogue metric with a ``claim_kind``."""
    return {name: str(get_metric(name).claim_kind) for name in list_metrics() if get_metric(name).claim_kind}


RELATIONS = ("less", "greater", "gain", "ratio")
#: Conditions a relative claim may require of the records it compares, and the record task
#: (see ``task_of_metric``) each applies to: a condition that cannot bear on the metric is a typo.
CONDITION_TASKS: dict[str, tuple[str, ...]] = {
    "gpu": ("latency", "throughput"),
    "real_weights": ("evaluation",),
    "coco": ("evaluation",),
}
CONDITIONS = tuple(CONDITION_TASKS)
#: Weights releases a row may name (the weights loader's release tag; see ``weights_release``).
RELEASES = ("coco", "obj2coco", "obj365")


def task_of_metric(metric: str) -> str:
    """The record task that measures ``metric`` (its catalogue ``task``; relative claims compare
    records of this task)."""
    return get_metric(metric).task


@dataclass(frozen=True)
class ClaimConditions:
    """The conditions a claims file says its numbers were measured under (its ``protocol:`` block).

    Not ``dfine_bench.profiling.Protocol`` (a preset the profiler runs), but the same facts seen
    from the claims' side: the defaults are taken from ``PAPER_T4`` so that the two cannot drift
    apart silently (the shipped ``dfine_paper.yaml`` is tested to match it). ``device`` is a
    whole-word part of the GPU name (see ``device_matches``); ``timed`` is what the latency
    covers (the paper: the deploy engine, model + top-k postprocessor); ``coco_images`` is the
    size of COCO val2017.
    """

    description: str = PAPER_T4.description
    device: str = PAPER_T4.reference_device or ""  # no reference device: no latency is comparable
    backend: str = PAPER_T4.backend
    dtype: str = PAPER_T4.dtype
    batch_size: int = PAPER_T4.batch_size
    input_size: tuple[int, int] = PAPER_T4.input_size
    timed: str = PAPER_T4.timed
    coco_images: int = PAPER_COCO_IMAGES


@dataclass(frozen=True)
class Claim:
    """One checkable statement. Rows give ``model`` + ``claimed``; relative claims give ``a``/``b``.

    ``decimals`` is how many decimals the claimed value is written with (exact claims compare
    after rounding to it); ``tolerance`` is absolute for AP and gains, relative for latency.
    ``counted_elsewhere``: the paper copied this params/GFLOPs figure from the model's own
    authors, who used another counter, so an exact match is not expected (shown for reference).
    ``erratum``: a known discrepancy in the paper's figure (why it cannot match); such a claim is
    measured and shown but never judged. ``release`` is the weights release the claim is about
    (relative claims: only with the ``real_weights`` condition; None there means COCO).
    ``unmeasurable``: why no record here can ever decide the claim (it is "not measured" with
    this reason); ``evidence``: the file of small-scale evidence shown beside it, never judged.
    """

    id: str
    source: str
    kind: str
    metric: str
    unit: str
    claimed: float | None = None
    model: str | None = None
    release: str | None = None
    decimals: int = 0
    tolerance: float | None = None
    a: str | None = None
    b: str | None = None
    relation: str | None = None
    conditions: tuple[str, ...] = ()
    text: str = ""
    note: str = ""
    counted_elsewhere: bool = False
    erratum: str = ""
    unmeasurable: str = ""
    evidence: str = ""

    @property
    def subject(self) -> str:
        """The model(s) the claim is about, for tables."""
        return self.model if self.model else f"{self.a} vs {self.b}"

    def describe(self) -> str:
        """The claim in words: its ``text`` if the file gives one, else built from its fields
        (relative claims have no single claimed value, so they are worded from the relation)."""
        if self.text:
            return self.text
        if self.kind == "relative":
            return self._describe_relative()
        release = f" ({self.release} weights)" if self.release and self.kind == "tolerance" else ""
        value = "?" if self.claimed is None else f"{self.claimed:g}"
        return f"{self.model}{release}: {self.metric} = {value} {self.unit}".strip()

    def _describe_relative(self) -> str:
        plain = f"{self.a} {self.relation} {self.b} ({self.metric})"
        if self.relation not in ("gain", "ratio") or self.claimed is None:
            return plain
        unit = f" {self.unit}" if self.relation == "gain" and self.unit else ""
        within = f" ± {self.tolerance:g}{unit}" if self.tolerance is not None else ""
        return f"{plain}: {self.claimed:g}{unit}{within}"


@dataclass(frozen=True)
class ClaimSet:
    """The claims of one file, with the conditions (``protocol:``) they were measured under."""

    name: str
    title: str
    path: Path
    protocol: ClaimConditions
    claims: tuple[Claim, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[Claim]:
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)

    def models(self) -> set[str]:
        return {m for c in self.claims for m in (c.model, c.a, c.b) if m}
