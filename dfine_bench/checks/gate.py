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
The tolerance table (defaults and layers) is ``checks/tolerances.py``; the run-level problems and
notes (another model or record set, an unfinished run, changed versions) are ``checks/run_level.py``.

Paired ΔAP (``CheckResult.paired``, ``checks/paired_view.py``): where a run's evaluation record and
its baseline entry carry a bootstrap of the same images, AP/AP50/AP75 also get Δ = run − baseline
with its interval and p-value. It is shown next to the tolerance verdict and never changes the
exit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dfine_bench.checks.comparability import Differences, differences, group, weights_note
from dfine_bench.checks.entries import Baseline, Entry, RunData, check_finite
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
from dfine_bench.checks.run_level import (
    check_catalogue,
    ignored_run_tolerances,
    run_problems,
    unclean_note,
    version_notes,
)
from dfine_bench.checks.tolerances import (  # re-exported: the gate's tolerance table is part of its API
    DEFAULT_TOLERANCES,
    SETTINGS,
    default_tolerances,
    gated_metric,
    resolve_tolerances,
    timing_metrics,
)
from dfine_bench.records import metrics as catalogue
from dfine_bench.records.metrics import find_metric

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
    check_catalogue(baseline)
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
    result.problems.extend(run_problems(baseline, run))
    diffs = Differences()
    for rid in sorted(set(baseline.entries) & set(run.entries)):
        result.rows.extend(_compare_record(baseline, rid, run.entries[rid], tol, diffs, allow_other_device))
    result.problems.extend(diffs.setup_problems())
    if allow_other_device:
        result.notes.extend(f"timings not compared: {d}" for d in group(diffs.machine))
    else:
        result.problems.extend(diffs.machine_problems())
    result.paired = paired_view(baseline.entries, run.entries, result.rows)
    result.notes.extend(unclean_note(result.rows))
    result.notes.extend(weights_note(baseline))
    result.notes.extend(version_notes(baseline, run))
    result.notes.extend(ignored_run_tolerances(run, tol))
    return result


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
    "SETTINGS",
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
