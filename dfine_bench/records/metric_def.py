"""One metric's definition (``MetricDef``) and the vocabularies it is written in.

The gate rules (``GATE_RULES``, with ``TOLERANCE_RULES`` among them), the claim kinds, the
comparison tables and the detection stages are named here, next to the dataclass that validates a
definition against them when it is made. The catalogue that holds the definitions is
``dfine_bench.records.metrics``; the built-in ones are ``dfine_bench.records.builtin_metrics``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dfine_bench.errors import ConfigError
from dfine_bench.records.schema import TASK_NAME, TASKS

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
