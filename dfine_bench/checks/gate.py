"""The regression gate: compare a run with a baseline, metric by metric, and decide 0 / 1 / 2.

Exit codes (``CheckResult.exit_code``): **0** no regression; **1** a regression (a metric got
worse beyond its tolerance, params/GFLOPs changed, a record or images now fail); **2** cannot
compare (another model set or record set, another device, backend or dataset, other weights
(source or checkpoint), a missing metric, a skipped record, an unfinished run). When a run has
both a regression and something that cannot be compared, the exit code is 1: a proven
regression is the stronger statement and both fail a build.

Comparability (checked before any number): the run must hold the baseline's models and record
ids, no more and no fewer; per record the same device, backend, dtype, batch size, input size,
timed part and graph (the deploy graph or the model graph with the postprocessor in Python),
protocol and COCO engine; for evaluations the same dataset (name, kind, image
count, subset, annotation hash: ``DATASET_KEYS``); the same weights (``WEIGHTS_KEYS``: source,
seed for random-init weights, checkpoint ``weights_id`` and ``weights_sha256``; a sha256 missing
on one side, a checkpoint not hashed, leaves ``weights_id`` to decide). A baseline saved before
``weights_id`` / ``weights_sha256`` were kept cannot tell two checkpoints apart: the check says so
in a note and does not fail on it.
Latency and throughput also need the same machine: the same ``device_name`` and thread count,
and the same speed-relevant fields of their environment fingerprints (``checks.fingerprint``:
CPU/GPU, driver, CUDA, cuDNN, runtime versions, opset, exporter, precision flags); a differing
field is "not comparable" and named.
``allow_other_device=True`` (``--allow-other-device``) turns that last requirement into "timings
not compared" rows, so accuracy, params and GFLOPs are still gated on another machine
(GitHub-hosted runners, whose CPU model varies from run to run).

Which rule judges a metric, and its default tolerance, come from the metric catalogue
(``dfine_bench.records.metrics``: ``MetricDef.gate`` and ``.tolerance``); a baseline metric the
catalogue does not know is an error before anything is compared (exit 2), never silently not
gated. Tolerances: the catalogue's defaults, overridden by the baseline's own (saved with it from
the suite's ``suite.tolerances``), then by ``--tolerance``. The run under test never sets its own
tolerances: its ``suite.tolerances`` are ignored (a note says so when they differ), so a run cannot
loosen the gate that judges it.

Non-finite numbers never pass: a baseline holding a NaN or an infinity is refused (``BaselineError``,
exit 2, naming the record and metric), and a NaN or infinite metric or latency sample in the run
under test is a failure (``WORSE``), never "within". A gated metric the baseline has no value for
cannot be compared (exit 2), rather than passing as "not gated".

The rule per ``MetricDef.gate`` (noise-aware latency, throughput, absolute, exact, image counts,
record status) is ``checks/rules.py``.

Paired ΔAP (``CheckResult.paired``, ``checks/paired_view.py``): where a run's evaluation record and
its baseline entry carry a bootstrap of the same images, AP/AP50/AP75 also get Δ = run − baseline
with its interval and p-value. It is shown next to the tolerance verdict and never changes the
exit code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from dfine_bench.checks.baseline import (
    Baseline,
    BaselineError,
    Entry,
    RunData,
    check_finite,
)
from dfine_bench.checks.comparability import Differences, differences, group, weights_note
from dfine_bench.checks.paired_view import PairedView, paired_view
from dfine_bench.checks.rules import (  # the verdicts and Row are part of the gate's API too
    BETTER,
    CANNOT,
    CHANGED,
    NOT_COMPARED,
    OK,
    VERDICTS,
    WORSE,
    Row,
    check_absolute,
    check_exact,
    check_images,
    check_latency,
    check_status,
    check_throughput,
    finite_or_none,
    fmt_value,
    not_finite_row,
    unit_of,
)
from dfine_bench.records import metrics as catalogue
from dfine_bench.records.metrics import find_metric, list_metrics

#: Keys of the tolerance table that are settings of the timing rule, not metrics, and their defaults.
SETTINGS = ("timing_alpha", "timing_min_delta_ms")
_SETTING_DEFAULTS = {"timing_alpha": 0.01, "timing_min_delta_ms": 0.1}

#: The catalogue's gate rules this module implements; a rule it does not know is an error at import.
_IMPLEMENTED = frozenset(
    {
        catalogue.ABSOLUTE,
        catalogue.EXACT,
        catalogue.LATENCY,
        catalogue.THROUGHPUT,
        catalogue.COUNT,
        catalogue.INFORMATIONAL,
    }
)
if set(catalogue.GATE_RULES) != _IMPLEMENTED:  # pragma: no cover - a new rule needs code here
    raise ImportError(f"gate rules {sorted(set(catalogue.GATE_RULES) - _IMPLEMENTED)} have no implementation")


def timing_metrics() -> list[str]:
    """Metrics gated by a timing rule (``latency`` / ``throughput``): not compared across machines."""
    return [*list_metrics(gate=catalogue.LATENCY), *list_metrics(gate=catalogue.THROUGHPUT)]


def default_tolerances() -> dict[str, float]:
    """Every tolerance key with its default: each tolerance-ruled metric's, then the timing settings."""
    out = {
        name: float(find_metric(name).tolerance or 0.0)  # type: ignore[union-attr]
        for name in list_metrics()
        if find_metric(name).gate in catalogue.TOLERANCE_RULES  # type: ignore[union-attr]
    }
    return {**out, **_SETTING_DEFAULTS}


#: The defaults of the built-in catalogue (``default_tolerances()`` includes plug-in metrics).
DEFAULT_TOLERANCES: dict[str, float] = default_tolerances()


@dataclass
class CheckResult:
    """Every row, the run-level problems, and the exit code they add up to."""

    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # cannot compare, run level
    notes: list[str] = field(default_factory=list)
    tolerances: dict[str, float] = field(default_factory=dict)
    tolerance_sources: dict[str, str] = field(default_factory=dict)
    baseline_label: str = ""
    run_label: str = ""
    # paired ΔAP against the baseline (``checks.paired_view``): shown, never part of the exit code
    paired: PairedView = field(default_factory=PairedView)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.failing]

    @property
    def uncomparable(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == CANNOT]

    @property
    def exit_code(self) -> int:
        if self.regressions:
            return 1
        if self.problems or self.uncomparable:
            return 2
        return 0

    @property
    def status(self) -> str:
        return {0: "pass", 1: "regression", 2: "cannot compare"}[self.exit_code]


# -- tolerances -------------------------------------------------------------------------
def gated_metric(name: str) -> bool:
    """Whether ``_compare_metrics`` compares ``name`` with a tolerance rule (image counts have theirs)."""
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


def _version_notes(baseline: Baseline, run: RunData) -> list[str]:
    base_versions = baseline.provenance.get("versions") or {}
    env = run.records[0].environment if run.records else {}
    changed = [
        f"{k} {base_versions[k]} -> {env.get(k)}"
        for k in sorted(base_versions)
        if base_versions.get(k) is not None and env.get(k) != base_versions.get(k)
    ]
    return [f"versions differ from the baseline's: {', '.join(changed)}"] if changed else []


# -- the comparison ---------------------------------------------------------------------
def compare(
    baseline: Baseline,
    run: RunData,
    *,
    tolerances: Mapping[str, float] | None = None,
    allow_other_device: bool = False,
) -> CheckResult:
    """Compare ``run`` with ``baseline``; see the module docstring for every rule.

    ``tolerances`` (``--tolerance``) override the baseline's; the run's own ``suite.tolerances``
    are never used (the run under test cannot loosen its own gate).
    """
    _check_catalogue(baseline)
    check_finite(baseline.entries, baseline.label)
    layers: list[tuple[str, Mapping[str, float]]] = [(f"{baseline.label}: tolerances", baseline.tolerances)]
    if tolerances:
        layers.append(("--tolerance", tolerances))
    tol, sources = resolve_tolerances(layers)
    result = CheckResult(
        tolerances=tol,
        tolerance_sources=sources,
        baseline_label=baseline.label,
        run_label=str(run.run_dir),
    )
    result.problems.extend(_run_problems(baseline, run))
    diffs = Differences()
    for rid in sorted(set(baseline.entries) & set(run.entries)):
        result.rows.extend(_compare_record(baseline, rid, run.entries[rid], tol, diffs, allow_other_device))
    result.problems.extend(diffs.setup_problems())
    if allow_other_device:
        result.notes.extend(f"timings not compared: {d}" for d in group(diffs.machine))
    else:
        result.problems.extend(diffs.machine_problems())
    result.paired = paired_view(baseline.entries, run.entries, result.rows)
    result.notes.extend(_unclean_note(result.rows))
    result.notes.extend(weights_note(baseline))
    result.notes.extend(_version_notes(baseline, run))
    result.notes.extend(_ignored_run_tolerances(run, tol))
    return result


def _run_problems(baseline: Baseline, run: RunData) -> list[str]:
    """Run-level reasons the two cannot be compared: an unfinished run, other models or records."""
    problems: list[str] = []
    status = run.meta.get("status")
    if run.meta and status != "complete":
        problems.append(
            f"run {run.run_id} is {status!r}, not complete: finish it (re-run the same command) first"
        )
    base_models = {e.model_name for e in baseline.entries.values()}
    run_models = {e.model_name for e in run.entries.values()}
    parts = []
    if base_models - run_models:
        parts.append(f"the run lacks {', '.join(sorted(base_models - run_models))}")
    if run_models - base_models:
        parts.append(f"the baseline lacks {', '.join(sorted(run_models - base_models))}")
    if parts:
        problems.append(
            f"another model set: {'; '.join(parts)} (save a new baseline if the suite's models changed)"
        )
    return problems + _record_set_problems(baseline, run, base_models & run_models)


def _record_set_problems(baseline: Baseline, run: RunData, models: set[str]) -> list[str]:
    """Records of the models both hold that only one side has."""
    missing = sorted(
        r for r, e in baseline.entries.items() if e.model_name in models and r not in run.entries
    )
    extra = sorted(r for r, e in run.entries.items() if e.model_name in models and r not in baseline.entries)
    out = []
    if missing:
        out.append(f"records in the baseline but not in the run: {', '.join(missing)}")
    if extra:
        out.append(
            f"records in the run but not in the baseline: {', '.join(extra)} "
            "(save a new baseline to gate them)"
        )
    return out


def _compare_record(
    baseline: Baseline,
    rid: str,
    new: Entry,
    tol: dict[str, float],
    diffs: Differences,
    allow_other_device: bool,
) -> list[Row]:
    """The rows of one record present on both sides (none where its setup or machine differs)."""
    base = baseline.entries[rid]
    status_row = check_status(base, new)
    if status_row is not None:  # before the setup: a record that did not run measured nothing
        return [status_row]
    hard, machine = differences(base, new)
    diffs.add(diffs.hard, hard, rid)
    if hard:
        return []
    if not machine:
        return _compare_metrics(base, new, baseline, tol, tol["timing_alpha"], tol["timing_min_delta_ms"])
    diffs.add(diffs.machine, machine, rid)
    if not allow_other_device:
        return []
    what = "; ".join(f"{k} {b!r} -> {n!r}" for k, b, n in machine)
    return [
        Row(
            rid,
            metric,
            base.metrics.get(metric),
            new.metrics.get(metric),
            NOT_COMPARED,
            f"another machine ({what})",
            unit_of(metric),
        )
        for metric in timing_metrics()
        if metric in base.metrics
    ]


def _unclean_note(rows: list[Row]) -> list[str]:
    unclean = [r.record_id for r in rows if r.metric == "status" and r.verdict == OK]
    if not unclean:
        return []
    return [
        f"the baseline is not clean: {len(unclean)} record(s) failed or were skipped there too and are "
        f"not gated: {', '.join(unclean)}"
    ]


def _check_catalogue(baseline: Baseline) -> None:
    """Every metric the baseline holds must be in the catalogue (so that it has a gate rule)."""
    unknown = sorted({m for e in baseline.entries.values() for m in e.metrics if find_metric(m) is None})
    if unknown:
        broken = catalogue.load_errors()
        not_loaded = f" (plug-ins that failed to load: {', '.join(broken)})" if broken else ""
        raise BaselineError(
            f"{baseline.label}: metric(s) {', '.join(unknown)} are not in the metric catalogue, so no gate "
            "rule says how to compare them: register each with dfine_bench.records.metrics.register_metric "
            f"(installing the plug-in that defines them), or re-save the baseline{not_loaded}"
        )


def _ignored_run_tolerances(run: RunData, used: Mapping[str, float]) -> list[str]:
    """A note when the run's own suite.tolerances differ from the ones it was judged with."""
    differ = {k: v for k, v in run.suite_tolerances.items() if used.get(k) != v}
    if not differ:
        return []
    shown = ", ".join(f"{k}={v:g}" for k, v in differ.items())
    return [
        f"the run's own suite.tolerances ({shown}) are not used: a run is judged by the baseline's "
        "tolerances and --tolerance only (re-save the baseline to change them)"
    ]


def _compare_metrics(
    base: Entry, new: Entry, baseline: Baseline, tol: dict[str, float], alpha: float, floor: float
) -> list[Row]:
    rows: list[Row] = []
    rid = new.record_id
    if new.task == "evaluation":
        rows.extend(check_images(base, new))
    rows.extend(_missing_in_baseline(base, new))
    for metric, b in base.metrics.items():
        if not gated_metric(metric):
            continue
        rule = find_metric(metric).gate  # type: ignore[union-attr]
        n = new.metrics.get(metric)
        if metric not in new.metrics:
            rows.append(
                Row(rid, metric, b, None, CANNOT, "metric missing in the run", unit_of(metric), changed=True)
            )
            continue
        if rule == catalogue.LATENCY:
            rows.append(check_latency(base, new, tol[metric], alpha, floor))
            continue
        if rule == catalogue.THROUGHPUT:
            rows.append(check_throughput(base, new, _latency_of(baseline, base), tol[metric], floor))
            continue
        if b is None and n is None:
            continue
        if not finite_or_none(n):
            rows.append(not_finite_row(rid, metric, b, n, f"the run's {metric}"))
            continue
        if b is None:
            why = (
                "the baseline has no value: cannot gate it (re-save the baseline from a run that measured it)"
            )
            rows.append(Row(rid, metric, b, n, CANNOT, why, unit_of(metric)))
            continue
        if n is None:
            rows.append(Row(rid, metric, b, n, CANNOT, "no value in the run", unit_of(metric)))
            continue
        if rule == catalogue.EXACT:
            rows.append(check_exact(rid, metric, b, n, tol[metric]))
        else:
            rows.append(check_absolute(rid, metric, b, n, tol[metric]))
    return rows


def _missing_in_baseline(base: Entry, new: Entry) -> list[Row]:
    """A gated metric the run measured and the baseline does not hold: the baseline cannot vouch
    for it (a field removed by hand, or saved before the metric existed), so it cannot pass."""
    return [
        Row(
            new.record_id,
            metric,
            None,
            value,
            CANNOT,
            "the baseline lacks this gated metric: cannot gate it (restore the baseline, or re-save it "
            "from a run that measured it)",
            unit_of(metric),
        )
        for metric, value in new.metrics.items()
        if metric not in base.metrics and value is not None and gated_metric(metric)
    ]


def _latency_of(baseline: Baseline, throughput: Entry) -> Entry | None:
    """The baseline's bs-1 latency record of the same model, backend and dtype as a throughput record."""
    for e in baseline.entries.values():
        if (
            e.task == "latency"
            and e.model_name == throughput.model_name
            and e.setup.get("backend") == throughput.setup.get("backend")
            and e.setup.get("dtype") == throughput.setup.get("dtype")
            and e.setup.get("batch_size") == 1
        ):
            return e
    return None


__all__ = [
    "BETTER",
    "CANNOT",
    "CHANGED",
    "DEFAULT_TOLERANCES",
    "NOT_COMPARED",
    "OK",
    "VERDICTS",
    "WORSE",
    "CheckResult",
    "Row",
    "check_absolute",
    "check_exact",
    "check_latency",
    "check_throughput",
    "compare",
    "default_tolerances",
    "fmt_value",
    "resolve_tolerances",
]
