"""The gate's tolerance table: each key's default, and the layers that override it.

Every metric the catalogue gates with a tolerance rule (``TOLERANCE_RULES``) has a key, with the
catalogue's default, and so do the two settings of the timing rule (``SETTINGS``).
``resolve_tolerances`` merges the layers over the defaults (the baseline's own tolerances, then
``--tolerance``), refusing a key the gate does not check and a value that is not a number >= 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from dfine_bench.checks.entries import BaselineError
from dfine_bench.records import metrics as catalogue
from dfine_bench.records.metrics import find_metric, get_metric, list_metrics

#: Keys of the tolerance table that are settings of the timing rule, not metrics, and their defaults.
SETTINGS = ("timing_alpha", "timing_min_delta_ms")
_SETTING_DEFAULTS = {"timing_alpha": 0.01, "timing_min_delta_ms": 0.1}


def timing_metrics() -> list[str]:
    """Metrics gated by a timing rule (``latency`` / ``throughput``): not compared across machines."""
    return [*list_metrics(gate=catalogue.LATENCY), *list_metrics(gate=catalogue.THROUGHPUT)]


def default_tolerances() -> dict[str, float]:
    """Every tolerance key with its default: each tolerance-ruled metric's, then the timing settings."""
    out = {
        name: float(get_metric(name).tolerance or 0.0)
        for name in list_metrics()
        if get_metric(name).gate in catalogue.TOLERANCE_RULES
    }
    return {**out, **_SETTING_DEFAULTS}


#: The defaults of the built-in catalogue (``default_tolerances()`` includes plug-in metrics).
DEFAULT_TOLERANCES: dict[str, float] = default_tolerances()


def gated_metric(name: str) -> bool:
    """Whether the gate compares ``name`` with a tolerance rule (image counts have theirs)."""
    d = find_metric(name)
    return d is not None and d.gate in catalogue.TOLERANCE_RULES


def resolve_tolerances(
    layers: list[tuple[str, Mapping[str, float]]],
) -> tuple[dict[str, float], dict[str, str]]:
    """Merge tolerance tables, later layers winning; unknown keys and bad values are errors.

    ``layers`` are ``(source, table)`` pairs, e.g. ``("suite.tolerances in run.json", {...})``.
    """
    defaults = default_tolerances()
    values = dict(defaults)
    sources = dict.fromkeys(defaults, "default")
    for source, table in layers:
        for key, raw in (table or {}).items():
            if key not in defaults:
                metrics = ", ".join(k for k in defaults if k not in SETTINGS)
                valid = f"{metrics}; settings of the timing rule: {', '.join(SETTINGS)}"
                raise BaselineError(
                    f"{source}: tolerance for {key!r}, which the gate does not check; valid keys: {valid}"
                )
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise BaselineError(f"{source}: tolerance {key}={raw!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise BaselineError(f"{source}: tolerance {key}={raw!r} must be a number >= 0")
            if key == "timing_alpha" and not 0 < value < 1:
                raise BaselineError(f"{source}: timing_alpha={raw!r} must be between 0 and 1")
            values[key] = value
            sources[key] = source
    return values, sources
