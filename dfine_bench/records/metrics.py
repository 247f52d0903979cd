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

This module is the registry and the import path every caller uses; the definition itself
(``MetricDef``, the gate rules, claim kinds and tables) is ``records.metric_def`` and the built-in
definitions are ``records.builtin_metrics``, both re-exported here.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from typing import Any

from dfine_bench.errors import ConfigError
from dfine_bench.records.builtin_metrics import COCO_STATS, PARAMS_CONVENTION, builtin_metrics
from dfine_bench.records.metric_def import (
    ABSOLUTE,
    ACCURACY_TABLE,
    CLAIM_KINDS,
    COMPLEXITY_TABLE,
    COUNT,
    EXACT,
    GATE_RULES,
    INFORMATIONAL,
    LATENCY,
    OWN_TABLE,
    SPEED_TABLE,
    STAGE_LABELS,
    STAGES,
    THROUGHPUT,
    TOLERANCE_RULES,
    MetricDef,
)
from dfine_bench.records.schema import Metric
from dfine_bench.utils.registry import Registry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dfine_bench.metrics"
#: The evaluators' group (``dfine_bench.evaluation.registry``): their modules may define metrics.
EVALUATOR_GROUP = "dfine_bench.evaluators"


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


# -- the built-in catalogue: registered on import, so every process that reads records has it ------
for _definition in builtin_metrics():
    register_metric(_definition, origin="builtin")

__all__ = [
    "ABSOLUTE",
    "ACCURACY_TABLE",
    "CLAIM_KINDS",
    "COCO_STATS",
    "COMPLEXITY_TABLE",
    "COUNT",
    "ENTRY_POINT_GROUP",
    "EVALUATOR_GROUP",
    "EXACT",
    "GATE_RULES",
    "INFORMATIONAL",
    "LATENCY",
    "METRICS",
    "OWN_TABLE",
    "PARAMS_CONVENTION",
    "REGISTRY",
    "SPEED_TABLE",
    "STAGES",
    "STAGE_LABELS",
    "THROUGHPUT",
    "TOLERANCE_RULES",
    "MetricDef",
    "find_metric",
    "get_metric",
    "list_metrics",
    "load_errors",
    "metric",
    "metric_defs",
    "register_metric",
    "reload",
    "unregister_metric",
]
