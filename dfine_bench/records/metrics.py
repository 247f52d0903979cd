"""The metric catalogue: one ``MetricDef`` per metric, and the registry every consumer reads.

A ``MetricDef`` says everything the project needs to know about one metric: its unit and
direction, the record task that produces it, how the regression gate judges it (``gate``, one of
``GATE_RULES``, with its default ``tolerance``), how a paper claim on it is checked
(``claim_kind``), and its table column (``label``, ``fmt``, ``headline`` for the overview). The
gate (``dfine_bench.checks.gate``), the claims (``dfine_bench.claims``) and the comparison tables
(``dfine_bench.reporting.tables``) derive what they need from here and keep no lists of their own.

Every metric must say how it is gated: ``gate`` has no default, and a rule outside ``GATE_RULES``
(or a tolerance-based rule without a tolerance) is a ``ConfigError`` when the definition is made,
that is when its module is imported. A metric that should not be gated says so explicitly with
``gate=INFORMATIONAL``. Producers build values with ``metric(name, value)``, which refuses a name
that is not registered, so no record can carry a metric nobody decided how to gate.

Adding a metric is one call, in the producing module (or a plug-in)::

    register_metric(MetricDef("dAP_cls", "%", False, task="evaluation", gate=INFORMATIONAL,
                              label="dAP cls", description="TIDE classification error"))

Third-party packages register theirs through the ``dfine_bench.metrics`` entry-point group, whose
targets are called once with no arguments (or imported, if modules), like ``dfine_bench.adapters``.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from dfine_bench.errors import ConfigError
from dfine_bench.records.schema import TASK_NAME, TASKS, Metric
from dfine_bench.utils.registry import Registry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dfine_bench.metrics"
#: The evaluators' group (``dfine_bench.evaluation.registry``): their modules may define metrics.
EVALUATOR_GROUP = "dfine_bench.evaluators"

#: The stages of one detection, in order, and how records and reports name them: the profiler
#: times each (``dfine_bench.profiling.stages``), the report stacks them (``reporting.stage_plot``).
STAGES = ("decode", "preprocess", "h2d", "forward", "d2h", "postprocess")
STAGE_LABELS = {
    "decode": "decode",
    "preprocess": "preprocess",
    "h2d": "host->device",
    "forward": "forward",
    "d2h": "device->host",
    "postprocess": "postprocess",
}

# -- gate rules (implemented in dfine_bench.checks.rules) -----------------------------------------
#: Higher is better, in absolute units (COCO AP points): worse when it drops by more than the tolerance.
ABSOLUTE = "absolute"
#: Must be equal (params, GFLOPs): any change beyond the absolute tolerance, up or down, fails.
EXACT = "exact"
#: Noise-aware latency rule on the stored samples; relative tolerance.
LATENCY = "latency"
#: Throughput against a band widened by the baseline's latency spread; relative tolerance.
THROUGHPUT = "throughput"
#: Image counts of an evaluation (failed: worse when more; skipped / seen: cannot compare).
COUNT = "count"
#: Explicitly not gated (shown in records and tables only), e.g. statistics derived from a gated one.
INFORMATIONAL = "informational"
GATE_RULES = (ABSOLUTE, EXACT, LATENCY, THROUGHPUT, COUNT, INFORMATIONAL)
#: Rules that compare against a tolerance (the definition must give a default).
TOLERANCE_RULES = (ABSOLUTE, EXACT, LATENCY, THROUGHPUT)

#: How a paper claim on a metric is checked (``dfine_bench.claims``); None: no row claims on it.
CLAIM_KINDS = ("exact", "tolerance", "hardware")


#: The tables of the built-in tasks; a component's own task gets a table named after it.
ACCURACY_TABLE, COMPLEXITY_TABLE, SPEED_TABLE = "accuracy", "complexity", "speed"
#: ``MetricDef.table`` default: a table of the metric's own task.
OWN_TABLE = ""


@dataclass(frozen=True)
class MetricDef:
    """One metric: what it means, how it is gated and claimed, and how a table shows it.

    ``task`` is the record task that produces it (a built-in one of ``TASKS`` or a component's
    own). ``table``: the comparison table its records go in (``accuracy``, ``complexity``,
    ``speed``, any other name for a table of its own; ``OWN_TABLE``: its task's name; None: no
    table). ``label`` is the column header; ``{bs}`` in it becomes `` bs<N>`` for records at
    another batch size than 1 (latency columns). ``label=None``: no table column. ``headline``:
    also in the one-table overview. ``valid``: the inclusive range a real value lies in, and
    ``positive``: it must be above 0 (times, rates); a baseline outside is refused.
    """

    name: str
    unit: str
    higher_is_better: bool | None
    task: str
    gate: str
    tolerance: float | None = None
    claim_kind: str | None = None
    label: str | None = None
    fmt: str = "{:.2f}"
    headline: bool = False
    description: str = ""
    table: str | None = OWN_TABLE
    valid: tuple[float, float] = (-math.inf, math.inf)
    positive: bool = False

    def __post_init__(self) -> None:
        where = f"metric {self.name!r}"
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"a metric needs a non-empty name (got {self.name!r})")
        if self.gate not in GATE_RULES:
            raise ConfigError(
                f"{where} has gate rule {self.gate!r}: every metric needs one of {', '.join(GATE_RULES)} "
                f"(use gate={INFORMATIONAL!r} for a metric that is deliberately not gated)"
            )
        if self.gate in TOLERANCE_RULES and (self.tolerance is None or self.tolerance < 0):
            raise ConfigError(f"{where}: gate rule {self.gate!r} needs a default tolerance >= 0")
        if not isinstance(self.task, str) or not TASK_NAME.fullmatch(self.task):
            raise ConfigError(
                f"{where}: task {self.task!r} must be a lower-case name such as {', '.join(TASKS)}"
            )
        if self.claim_kind is not None and self.claim_kind not in CLAIM_KINDS:
            raise ConfigError(
                f"{where}: claim kind {self.claim_kind!r} is not one of {', '.join(CLAIM_KINDS)}"
            )
        low, high = self.valid
        if not low <= high:
            raise ConfigError(f"{where}: valid range {self.valid!r} is empty (give (low, high))")
        if self.table == OWN_TABLE:
            object.__setattr__(self, "table", self.task)

    @property
    def gated(self) -> bool:
        """Whether the gate compares this metric (``COUNT`` metrics are gated by the image rule)."""
        return self.gate != INFORMATIONAL

    def column_label(self, batch_size: int = 1) -> str:
        """The table header, with `` bs<N>`` where the label asks for it and N is not 1."""
        label = self.label or self.name
        return label.replace("{bs}", "" if batch_size == 1 else f" bs{batch_size}")

    def out_of_range(self, value: float) -> str | None:
        """Why ``value`` cannot be a real measurement of this metric (None when it can)."""
        low, high = self.valid
        if self.positive and not value > 0:
            return f"must be > 0 {self.unit}"
        if not low <= value <= high:
            return f"must lie in [{low:g}, {high:g}] {self.unit}"
        return None


def _take_definition(name: str, target: Any) -> bool:
    """A ``dfine_bench.metrics`` entry point may name a ``MetricDef`` itself."""
    if isinstance(target, MetricDef):
        register_metric(target)
        return True
    return False


#: The catalogue. Besides its own entry-point group it imports the modules of the evaluator
#: plug-ins (``dfine_bench.evaluators``): a metric defined at the top of its evaluator's module is
#: in the catalogue of every process, also one that only reads records (``check``, ``report``).
REGISTRY: Registry[MetricDef] = Registry(
    "metric",
    (ENTRY_POINT_GROUP,),
    import_groups=(EVALUATOR_GROUP,),
    describe=lambda d: f"{d.unit}, {d.task}, gate {d.gate}",
    handle=_take_definition,
)

#: The registry itself (name -> definition, in registration order, read-only); read it through
#: ``get_metric`` / ``list_metrics`` to include plug-in metrics.
METRICS = REGISTRY.entries

#: the registry's own operations under the names callers use (tests register temporary entries)
unregister_metric = REGISTRY.unregister
reload = REGISTRY.reload  # discover again, after a plug-in was put on the path
load_errors = REGISTRY.load_errors  # modules or plug-ins that failed to load, and why (``list``)


def register_metric(definition: MetricDef, *, origin: str | None = None) -> MetricDef:
    """Add a metric to the catalogue; the same name twice with another definition is an error."""
    if not isinstance(definition, MetricDef):
        raise ConfigError(f"register_metric takes a MetricDef, not {type(definition).__name__}")
    return REGISTRY.register(definition.name, definition, origin=REGISTRY.origin_for(None, origin))


def get_metric(name: str) -> MetricDef:
    """The definition of ``name``; an ``UnknownNameError`` (exit 2) naming the known ones if none."""
    return REGISTRY.get(name)


def find_metric(name: str) -> MetricDef | None:
    """The definition of ``name``, or None."""
    return REGISTRY.find(name)


def list_metrics(
    pattern: str = "*", *, task: str | None = None, gate: str | None = None, claim_kind: str | None = None
) -> list[str]:
    """Registered metric names matching the wildcard ``pattern`` (and the filters given), in
    catalogue order (the order tables show them in)."""
    return [
        d.name
        for d in REGISTRY.values()
        if fnmatch.fnmatchcase(d.name, pattern)
        and (task is None or d.task == task)
        and (gate is None or d.gate == gate)
        and (claim_kind is None or d.claim_kind == claim_kind)
    ]


def metric_defs(names: Iterable[str]) -> list[MetricDef]:
    return [get_metric(n) for n in names]


def metric(name: str, value: float | int | None, unit: str | None = None) -> Metric:
    """A ``Metric`` with the unit and direction of its catalogue entry.

    An unregistered ``name`` is an error: register it with ``register_metric`` (saying how it is
    gated) first. ``unit`` may only restate the catalogue's unit.
    """
    d = get_metric(name)
    if unit is not None and unit != d.unit:
        raise ConfigError(f"metric {name!r} is in {d.unit!r} in the catalogue, not {unit!r}")
    return Metric(
        value=None if value is None else float(value), unit=d.unit, higher_is_better=d.higher_is_better
    )


# -- the built-in catalogue ----------------------------------------------------------------------
#: COCO's 12 standard stats, in pycocotools' ``stats`` order; stored in percent (paper style).
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_HEADLINE_COCO = ("AP", "AP50", "AP75", "APs", "APm", "APl")

#: What ``params`` counts, stored in complexity records' ``details["params_convention"]``.
PARAMS_CONVENTION = (
    "official tools/benchmark/get_info.py: sum(p.numel()) over the deploy() model (training-only "
    "heads dropped, RepVGG blocks and D-FINE's encoder conv+BN fused, the denoising class embedding kept)"
)

_BUILTIN = (
    *(
        MetricDef(
            n,
            "%",
            True,
            task="evaluation",
            gate=ABSOLUTE,
            tolerance=0.3,
            claim_kind="tolerance",
            label=n,
            headline=n in _HEADLINE_COCO,
            description=f"COCO {n} (x100)",
        )
        for n in COCO_STATS
    ),
    MetricDef(
        "images_seen",
        "count",
        None,
        "evaluation",
        COUNT,
        label="images",
        fmt="{:.0f}",
        description="images evaluated",
    ),
    MetricDef(
        "images_failed",
        "count",
        False,
        "evaluation",
        COUNT,
        label="failed images",
        fmt="{:.0f}",
        description="images that could not be read or run",
    ),
    MetricDef(
        "images_skipped",
        "count",
        False,
        "evaluation",
        COUNT,
        description="images skipped (resumed from disk or filtered)",
    ),
    MetricDef(
        "params",
        "M",
        None,
        "complexity",
        EXACT,
        0.0,
        claim_kind="exact",
        label="params (M)",
        headline=True,
        description=f"parameters, millions: {PARAMS_CONVENTION}",
    ),
    MetricDef(
        "params_total",
        "M",
        None,
        "complexity",
        EXACT,
        0.0,
        label="params total (M)",
        description=(
            "every parameter of the model as built, millions (training-only heads and unfused layers "
            "included)"
        ),
    ),
    MetricDef(
        "gflops",
        "GFLOPs",
        None,
        "complexity",
        EXACT,
        0.0,
        claim_kind="exact",
        label="GFLOPs",
        headline=True,
        description="GFLOPs at the input size, counted like the paper (calflops)",
    ),
    MetricDef(
        "gflops_torch",
        "GFLOPs",
        None,
        "complexity",
        EXACT,
        0.0,
        label="GFLOPs (torch counter)",
        description="GFLOPs by torch.utils.flop_counter (2 per multiply-add)",
    ),
    MetricDef(
        "latency_median",
        "ms",
        False,
        "latency",
        LATENCY,
        0.25,
        claim_kind="hardware",
        label="latency median{bs} (ms)",
        headline=True,
        description="median latency per batch",
    ),
    MetricDef(
        "latency_mean",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        claim_kind="hardware",
        label="latency mean{bs} (ms)",
        description="mean latency per batch (the median is gated)",
    ),
    MetricDef(
        "latency_p90",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        label="latency p90{bs} (ms)",
        headline=True,
        description="90th percentile latency (the median is gated)",
    ),
    MetricDef(
        "latency_p99",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        label="latency p99{bs} (ms)",
        description="99th percentile latency, only with >= 100 samples (the median is gated)",
    ),
    MetricDef(
        "latency_median_ci_low",
        "ms",
        None,
        "latency",
        INFORMATIONAL,
        description="lower end of the median's 95% bootstrap confidence interval (the median is gated)",
    ),
    MetricDef(
        "latency_median_ci_high",
        "ms",
        None,
        "latency",
        INFORMATIONAL,
        description="upper end of the median's 95% bootstrap confidence interval (the median is gated)",
    ),
    MetricDef(
        "latency_iqr", "ms", None, "latency", INFORMATIONAL, description="interquartile range of latency"
    ),
    MetricDef(
        "latency_std", "ms", None, "latency", INFORMATIONAL, description="standard deviation of latency"
    ),
    MetricDef(
        "latency_cv",
        "ratio",
        None,
        "latency",
        INFORMATIONAL,
        label="latency CV{bs}",
        fmt="{:.3f}",
        description="coefficient of variation (std / mean)",
    ),
    MetricDef(
        "fps",
        "img/s",
        True,
        "latency",
        INFORMATIONAL,
        claim_kind="hardware",
        label="FPS{bs} (img/s)",
        headline=True,
        description="images per second from the median latency (the median is gated)",
    ),
    MetricDef(
        "peak_rss",
        "MiB",
        False,
        "latency",
        INFORMATIONAL,
        label="peak RSS{bs} (MiB)",
        fmt="{:.0f}",
        description="peak resident memory of the process",
    ),
    MetricDef(
        "cuda_max_allocated",
        "MiB",
        False,
        "latency",
        INFORMATIONAL,
        label="CUDA peak{bs} (MiB)",
        fmt="{:.0f}",
        description="torch.cuda.max_memory_allocated",
    ),
    MetricDef(
        "cuda_max_reserved",
        "MiB",
        False,
        "latency",
        INFORMATIONAL,
        description="torch.cuda.max_memory_reserved",
    ),
    MetricDef(
        "output_max_abs_diff",
        "abs",
        False,
        "latency",
        INFORMATIONAL,
        label="max |diff| vs eager{bs}",
        fmt="{:.2g}",
        description="max |backend - eager| over outputs on one input (checked when profiling)",
    ),
    MetricDef(
        "harness_overhead",
        "ms",
        None,
        "latency",
        INFORMATIONAL,
        description="time the harness adds around an empty callable",
    ),
    # Time per stage (dfine_bench.profiling.stages): medians of each stage's own samples. They
    # explain the gated latency_median; each is informational (its samples are in the details).
    *(
        MetricDef(
            f"stage_{name}",
            "ms",
            False,
            "latency",
            INFORMATIONAL,
            description=f"median time of the {text} stage alone, batch 1 (latency_median is gated)",
        )
        for name, text in STAGE_LABELS.items()
    ),
    MetricDef(
        "stages_total",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        label="stages total{bs} (ms)",
        description="sum of the stages the protocol counts (details.stages: which, and which not measured)",
    ),
    MetricDef(
        "throughput",
        "img/s",
        True,
        "throughput",
        THROUGHPUT,
        0.25,
        label="throughput (img/s)",
        headline=True,
        description="best images per second over batch sizes",
    ),
    MetricDef(
        "max_batch_size",
        "count",
        None,
        "throughput",
        INFORMATIONAL,
        label="max batch",
        fmt="{:.0f}",
        description="largest batch size that fit in memory",
    ),
    # Error analysis (dfine_bench.evaluation.error_analysis): TIDE's breakdown of the AP50 a model
    # loses, per error type. Diagnostics that explain the gated COCO AP, not targets of their own.
    MetricDef(
        "tide_AP50",
        "%",
        True,
        "error_analysis",
        INFORMATIONAL,
        label="AP50 (TIDE)",
        description="TIDE's AP at IoU 0.5 (top 100 per image), the base of every dAP (AP50 is gated)",
    ),
    *(
        MetricDef(
            name,
            "%",
            False,
            "error_analysis",
            INFORMATIONAL,
            label=f"dAP {kind}",
            description=f"AP50 gained by fixing every {kind} error (TIDE oracle); explains AP, not gated",
        )
        for name, kind in (
            ("dAP_cls", "classification"),
            ("dAP_loc", "localization"),
            ("dAP_both", "cls+loc"),
            ("dAP_dupl", "duplicate"),
            ("dAP_bkg", "background"),
            ("dAP_miss", "missed"),
            ("dAP_fp", "false positive"),
            ("dAP_fn", "false negative"),
        )
    ),
)

#: Where each built-in task's metrics are shown, and the values each unit can take (a built-in
#: definition that states neither gets these; a plug-in states its own).
_BUILTIN_TABLES = {
    "evaluation": ACCURACY_TABLE,
    "complexity": COMPLEXITY_TABLE,
    "latency": SPEED_TABLE,
    "throughput": SPEED_TABLE,
    "error_analysis": None,  # shown by the report's error-analysis section, not a comparison table
}
_UNIT_RANGES = {"%": ((0.0, 100.0), False), "ms": ((0.0, math.inf), True), "img/s": ((0.0, math.inf), True)}
_NON_NEGATIVE = ((0.0, math.inf), False)  # counts, sizes, GFLOPs, memory, spreads
_SPREADS = ("latency_iqr", "latency_std", "latency_cv")  # zero when every sample is equal

for _d in _BUILTIN:
    _valid, _positive = _UNIT_RANGES.get(_d.unit, _NON_NEGATIVE)
    if _d.name in _SPREADS or _d.name.startswith("stage_"):
        _valid, _positive = _NON_NEGATIVE
    register_metric(
        replace(_d, table=_BUILTIN_TABLES[_d.task], valid=_valid, positive=_positive), origin="builtin"
    )
