"""The regression gate: compare a run with a baseline, metric by metric, and decide 0 / 1 / 2.

Exit codes (``CheckResult.exit_code``): **0** no regression; **1** a regression (a metric got
worse beyond its tolerance, params/GFLOPs changed, a record or images now fail); **2** cannot
compare (another model set or record set, another device, backend or dataset, other weights
(source or checkpoint), a missing metric, a skipped record, an unfinished run). When a run has
both a regression and something that cannot be compared, the exit code is 1: a proven
regression is the stronger statement and both fail a build.

Comparability (checked before any number): the run must hold the baseline's models and record
ids, no more and no fewer; per record the same device, backend, dtype, batch size, input size,
timed part, protocol and COCO engine; for evaluations the same dataset (name, kind, image
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

Rules per ``MetricDef.gate``:

* COCO stats (``AP``, ``AP50``, ... ``ARl``; percent): absolute. Worse when the value drops by
  more than the tolerance (default 0.3 points); a rise beyond it is reported as better.
* ``params`` and ``gflops`` / ``gflops_torch``: must be equal. Params are compared in M rounded
  to 6 decimals (the exact parameter count), GFLOPs rounded to 4 significant digits; a tolerance
  (default 0) allows that much absolute difference. Any change, up or down, fails: a new
  architecture needs a new baseline.
* ``latency_median`` (ms, per latency record), noise-aware on the stored samples. Worse only
  when all three hold:

  1. the run's median exceeds the baseline's upper quartile by more than the relative
     tolerance (``median_new > p75_base * (1 + tol)``, default tol 0.25): the baseline's own
     spread sets the band, so a noisy baseline gets a wide one;
  2. the slowdown is larger than ``timing_min_delta_ms`` (default 0.1 ms;
     ``median_new - median_base``), below which timer and scheduler noise dominate;
  3. a one-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``, alternative "greater")
     says the run's samples are stochastically larger than the baseline's with
     p < ``timing_alpha`` (default 0.01). Skipped, and said so, when either side has fewer than
     ``MIN_SAMPLES`` samples.

  Faster than ``median_base / (1 + tol)`` is reported as better. Why the upper quartile and not
  p90: on a shared CPU about one call in ten stalls (2-3x slower); with the usual 10-15 samples
  the baseline's p90 then often *is* a stall, and a p90 band let a 2x slowdown pass 42% of the
  time in simulation (15 samples, 10% stalls at 3x), against 6% with p75, while neither failed
  any of 1,000 re-runs of the same distribution (with a quarter of the calls stalling, p75 fails
  under 1% of re-runs; ``tests/checks/test_rules.py``). The run-to-run drift of a busy machine
  (its load changing between two runs) is what the tolerance is for: three runs of
  ``suite=ci`` (one thread) on a shared 2-core machine gave a new median / baseline p75 of at
  most 1.37 (p95 1.21), hence that suite's ``latency_median: 0.5``.
* ``throughput`` (img/s): the sweep keeps one median per batch size, not samples, so the band
  comes from the baseline latency record of the same model, backend and dtype: worse when
  ``throughput_new < throughput_base / (spread * (1 + tol))`` with
  ``spread = p75 / median`` of those latency samples (1 when absent), default tol 0.25, and the
  per-image time grew by more than ``timing_min_delta_ms``.
* ``images_failed``: worse when more images fail than in the baseline (the failed image ids are
  named). ``images_skipped`` > 0 where the baseline had none: cannot compare (those images'
  predictions were resumed from an earlier process or filtered, so the AP is not this code's).
  ``images_seen`` differing: cannot compare (another dataset).
* Record status, decided before any setup is compared: ok in the baseline but ``failed`` now
  is worse ("ok in the baseline, failed now: <reason>"); ``skipped`` now is cannot compare (the
  reason is shown); a record that failed or was skipped in the baseline too is not gated and is
  listed as such. A record that did not run measured nothing: the runner writes it under the
  record id its success would have had (task, model, backend, dtype, batch size), with only the
  run's base setup and no dataset, so its setup and dataset are not compared: a crash is a
  regression, not "another setup".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from dfine_bench.checks.baseline import (
    DATASET_KEYS,
    WEIGHTS_KEYS,
    Baseline,
    BaselineError,
    Entry,
    RunData,
    check_finite,
)
from dfine_bench.checks.fingerprint import fingerprint_differences
from dfine_bench.records import metrics as catalogue
from dfine_bench.records.metrics import find_metric, list_metrics

# -- verdicts ---------------------------------------------------------------------------
OK = "ok"
BETTER = "better"
WORSE = "WORSE"
CHANGED = "CHANGED"
CANNOT = "cannot compare"
NOT_COMPARED = "not compared"
VERDICTS = (OK, BETTER, WORSE, CHANGED, CANNOT, NOT_COMPARED)
FAILING = frozenset({WORSE, CHANGED})

#: Timing tests need at least this many samples on each side for the U test.
MIN_SAMPLES = 5
#: The baseline quantile (percent) the latency band starts from: the upper quartile.
BAND_QUANTILE = 75
#: Significant digits GFLOPs are compared at; decimals params (M) are compared at.
GFLOPS_DIGITS = 4
PARAMS_DECIMALS = 6

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

_TIMING_TASKS = ("latency", "throughput")
_SETUP_FIELDS = ("device", "backend", "dtype", "batch_size", "input_size", "timed", "protocol", "engine")
_MACHINE_FIELDS = ("device_name", "threads")
#: Checkpoint identity, missing from baselines saved before it was kept (see ``_weights_note``).
_CHECKPOINT_KEYS = ("weights_id", "weights_sha256")


@dataclass
class Row:
    """One compared quantity: a metric of a record, or a record's status."""

    record_id: str
    metric: str
    baseline: float | str | None
    value: float | str | None
    verdict: str
    why: str
    unit: str = ""
    changed: bool = True  # False: the value is identical to the baseline's (hidden in short tables)

    @property
    def failing(self) -> bool:
        return self.verdict in FAILING


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


# -- helpers ----------------------------------------------------------------------------
def fmt_value(v: Any) -> str:
    """A number for a table: 4 significant digits, ``-`` for none."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    return str(v)


def _unit(metric: str) -> str:
    d = find_metric(metric)
    return d.unit if d else ""


def _finite(v: float | None) -> bool:
    return v is None or math.isfinite(v)


def _not_finite_row(rid: str, metric: str, b: float | str | None, n: float | str | None, what: str) -> Row:
    why = f"{what} is not a finite number: a NaN or infinite measurement is a failure, never within tolerance"
    return Row(rid, metric, b, n, WORSE, why, _unit(metric))


def _median_upper(entry: Entry) -> tuple[float | None, float | None]:
    """Median and ``BAND_QUANTILE`` of a latency entry's samples (from its metrics when it has none)."""
    if entry.samples_ms:
        arr = np.asarray(entry.samples_ms, dtype=np.float64)
        return float(np.median(arr)), float(np.percentile(arr, BAND_QUANTILE))
    median, iqr = entry.metrics.get("latency_median"), entry.metrics.get("latency_iqr")
    if median is not None and iqr is not None:
        return median, median + iqr / 2
    return median, entry.metrics.get("latency_p90")


# -- metric rules -----------------------------------------------------------------------
def check_latency(base: Entry, new: Entry, tol: float, alpha: float, min_delta_ms: float) -> Row:
    """The noise-aware latency rule (see the module docstring)."""
    rid, metric = new.record_id, "latency_median"
    bad = [s for s in new.samples_ms or [] if not math.isfinite(s)]
    if bad:
        return _not_finite_row(rid, metric, None, None, f"{len(bad)} latency sample(s) of the run ({bad[0]})")
    b_med, b_up = _median_upper(base)
    n_med, _ = _median_upper(new)
    if not _finite(n_med):
        return _not_finite_row(rid, metric, b_med, n_med, "the run's median latency")
    if b_med is None or n_med is None:
        side = "baseline" if b_med is None else "run"
        return Row(rid, metric, b_med, n_med, CANNOT, f"no latency samples or median in the {side}", "ms")
    b_up = b_up if b_up is not None else b_med
    limit = b_up * (1 + tol)
    delta = n_med - b_med
    p: float | None = None
    b_s, n_s = base.samples_ms or [], new.samples_ms or []
    if len(b_s) >= MIN_SAMPLES and len(n_s) >= MIN_SAMPLES:
        p = float(mannwhitneyu(n_s, b_s, alternative="greater").pvalue)
    band = f"limit {limit:.4g} ms = baseline p{BAND_QUANTILE} {b_up:.4g} x {1 + tol:g}"
    test = (
        f"U-test p={p:.2g}"
        if p is not None
        else f"no U-test (fewer than {MIN_SAMPLES} samples on a side: {len(b_s)} vs {len(n_s)})"
    )
    above = n_med > limit
    big = delta > min_delta_ms
    significant = p is None or p < alpha
    ratio = f"x{n_med / b_med:.2f}" if b_med > 0 else ""
    if above and big and significant:
        why = f"median {n_med:.4g} ms ({ratio}) > {band}; +{delta:.3g} ms; {test} < {alpha:g}"
        return Row(rid, metric, b_med, n_med, WORSE, why, "ms")
    if above:
        held = (
            f"+{delta:.3g} ms is within the {min_delta_ms:g} ms noise floor"
            if not big
            else f"{test} >= {alpha:g}: not significant"
        )
        return Row(rid, metric, b_med, n_med, OK, f"median above the band ({band}) but {held}", "ms")
    if n_med * (1 + tol) < b_med:
        return Row(
            rid, metric, b_med, n_med, BETTER, f"faster: median {ratio} of the baseline's; {test}", "ms"
        )
    return Row(rid, metric, b_med, n_med, OK, f"median {n_med:.4g} ms ({ratio}) within {band}", "ms")


def check_throughput(
    base: Entry, new: Entry, base_latency: Entry | None, tol: float, min_delta_ms: float
) -> Row:
    """Throughput against a band widened by the baseline's latency spread (see the module docstring)."""
    rid, metric = new.record_id, "throughput"
    b, n = base.metrics.get(metric), new.metrics.get(metric)
    if not _finite(n):
        return _not_finite_row(rid, metric, b, n, "the run's throughput")
    if b is None or n is None or b <= 0:
        side = "baseline" if b is None or b <= 0 else "run"
        return Row(rid, metric, b, n, CANNOT, f"no throughput value in the {side}", "img/s")
    spread = 1.0
    if base_latency is not None:
        med, upper = _median_upper(base_latency)
        if med and upper and med > 0:
            spread = max(1.0, upper / med)
    limit = b / (spread * (1 + tol))
    per_image_delta = (1000.0 / n if n > 0 else math.inf) - 1000.0 / b
    band = f"limit {limit:.4g} img/s = baseline / ({spread:.3g} latency spread x {1 + tol:g})"
    ratio = f"x{n / b:.2f}"
    if n < limit and per_image_delta > min_delta_ms:
        why = f"{n:.4g} img/s ({ratio}) < {band}; +{per_image_delta:.3g} ms per image"
        return Row(rid, metric, b, n, WORSE, why, "img/s")
    if n < limit:
        why = f"below the band ({band}) but +{per_image_delta:.3g} ms per image is within the noise floor"
        return Row(rid, metric, b, n, OK, why, "img/s")
    if n > b * spread * (1 + tol):
        return Row(rid, metric, b, n, BETTER, f"higher: {ratio} of the baseline's", "img/s")
    return Row(rid, metric, b, n, OK, f"{n:.4g} img/s ({ratio}) within {band}", "img/s")


def check_absolute(rid: str, metric: str, b: float, n: float, tol: float) -> Row:
    """A higher-is-better percentage (COCO stats): worse when it drops by more than ``tol`` points."""
    delta = n - b
    unit = _unit(metric)
    changed = n != b
    if -delta > tol:
        why = f"dropped {-delta:.3g} points (> tolerance {tol:g})"
        return Row(rid, metric, b, n, WORSE, why, unit, changed)
    if delta > tol:
        return Row(rid, metric, b, n, BETTER, f"rose {delta:.3g} points", unit, changed)
    why = f"{delta:+.3g} points, within {tol:g}" if changed else "unchanged"
    return Row(rid, metric, b, n, OK, why, unit, changed)


def _counts_parameters(metric: str) -> bool:
    return _unit(metric) == "M"  # params, params_total: exact parameter counts in millions


def _rounded(metric: str, v: float) -> float:
    if _counts_parameters(metric):
        return round(v, PARAMS_DECIMALS)
    return float(f"{v:.{GFLOPS_DIGITS}g}")


def check_exact(rid: str, metric: str, b: float, n: float, tol: float) -> Row:
    """Params / GFLOPs: equal after rounding (or within an absolute ``tol``), in either direction."""
    rb, rn = _rounded(metric, b), _rounded(metric, n)
    unit = _unit(metric)
    rule = "M to 6 decimals" if _counts_parameters(metric) else f"{GFLOPS_DIGITS} significant digits"
    if abs(rn - rb) > tol + 1e-12:
        why = f"changed by {rn - rb:+.6g} {unit} (compared at {rule}; must be equal)"
        if _counts_parameters(metric):
            why += f": {round((rn - rb) * 1e6):+d} parameters"
        return Row(rid, metric, b, n, CHANGED, why, unit)
    return Row(rid, metric, b, n, OK, f"equal at {rule}", unit, changed=rb != rn)


def check_images(base: Entry, new: Entry) -> list[Row]:
    """Failed, skipped and evaluated image counts of an evaluation record."""
    rows: list[Row] = []
    rid = new.record_id
    for metric in ("images_failed", "images_skipped", "images_seen"):
        if metric in base.metrics and metric not in new.metrics:
            why = "metric missing in the run"
            rows.append(Row(rid, metric, base.metrics[metric], None, CANNOT, why, "count"))
    if rows:
        return rows
    for metric in ("images_failed", "images_skipped", "images_seen"):
        if not _finite(new.metrics.get(metric)):
            rows.append(
                _not_finite_row(rid, metric, base.metrics.get(metric), new.metrics.get(metric), metric)
            )
    if rows:
        return rows
    bf, nf = base.metrics.get("images_failed") or 0, new.metrics.get("images_failed") or 0
    if "images_failed" in new.metrics or "images_failed" in base.metrics:
        if nf > bf:
            ids = [str(f.get("image_id", f)) if isinstance(f, dict) else str(f) for f in new.failed_images]
            shown = f" (image ids {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})" if ids else ""
            why = f"{nf:.0f} image(s) failed, baseline {bf:.0f}{shown}: see details.failed_images"
            rows.append(Row(rid, "images_failed", bf, nf, WORSE, why, "count"))
        else:
            rows.append(Row(rid, "images_failed", bf, nf, OK, "no more failures", "count", nf != bf))
    bs, ns = base.metrics.get("images_skipped") or 0, new.metrics.get("images_skipped") or 0
    if "images_skipped" in new.metrics or "images_skipped" in base.metrics:
        if ns > bs:
            why = (
                f"{ns:.0f} image(s) skipped (resumed from an earlier process or filtered), baseline "
                f"{bs:.0f}: this AP is not all this code's; re-run with a fresh output.run_id"
            )
            rows.append(Row(rid, "images_skipped", bs, ns, CANNOT, why, "count"))
        else:
            rows.append(Row(rid, "images_skipped", bs, ns, OK, "no more skips", "count", ns != bs))
    bseen, nseen = base.metrics.get("images_seen"), new.metrics.get("images_seen")
    if bseen is not None and nseen is not None and bseen != nseen:
        why = f"evaluated {nseen:.0f} images, the baseline {bseen:.0f}: another dataset or subset"
        rows.append(Row(rid, "images_seen", bseen, nseen, CANNOT, why, "count"))
    return rows


def check_status(base: Entry, new: Entry) -> Row | None:
    """A row when either side is not ``ok``; ``None`` when both are (their metrics are compared)."""
    b, n, rid = base.status, new.status, new.record_id
    if b == n == "ok":
        return None
    reason = f": {new.reason}" if new.reason else ""
    if b == "ok" and n == "failed":
        return Row(rid, "status", b, n, WORSE, f"ok in the baseline, failed now{reason}")
    if b == "ok" and n == "skipped":
        return Row(rid, "status", b, n, CANNOT, f"ok in the baseline, skipped now{reason}")
    if b == n:
        return Row(rid, "status", b, n, OK, f"{n} in the baseline too (not gated){reason}", changed=False)
    if n == "ok":
        return Row(
            rid, "status", b, n, BETTER, f"{b} in the baseline, ok now: save a new baseline to gate it"
        )
    if n == "failed":
        return Row(rid, "status", b, n, WORSE, f"{b} in the baseline, failed now{reason}")
    return Row(rid, "status", b, n, CANNOT, f"{b} in the baseline, {n} now{reason}")


# -- comparability ----------------------------------------------------------------------
def _differences(base: Entry, new: Entry) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """(setup differences that make a record incomparable, machine differences that only affect timing)."""
    hard: list[tuple[str, Any, Any]] = []
    machine: list[tuple[str, Any, Any]] = []
    if base.task != new.task:
        hard.append(("task", base.task, new.task))
    for key in _SETUP_FIELDS:
        if key == "batch_size" and new.task == "throughput":
            key = "batch_sizes"  # the best batch size may move with noise; the swept sizes may not
        if key in base.setup and base.setup.get(key) != new.setup.get(key):
            hard.append((f"setup.{key}", base.setup.get(key), new.setup.get(key)))
    if new.task in _TIMING_TASKS:
        for key in _MACHINE_FIELDS:
            if key in base.setup and base.setup.get(key) != new.setup.get(key):
                machine.append((f"setup.{key}", base.setup.get(key), new.setup.get(key)))
        machine.extend(fingerprint_differences(base.fingerprint, new.fingerprint))
    for key in WEIGHTS_KEYS:
        if key not in base.model:  # an older baseline: unknown, not a difference (``_weights_note``)
            continue
        if key == "weights_seed" and not base.model.get("random_init"):
            continue  # a seed only shapes random-init weights
        b, n = base.model.get(key), new.model.get(key)
        if key == "weights_sha256" and (b is None or n is None):
            continue  # not hashed on one side (a checkpoint not downloaded yet): weights_id decides
        if b != n:
            hard.append((f"model.{key}", b, n))
    if base.dataset is not None:
        nd = new.dataset or {}
        for key in DATASET_KEYS:
            if key in base.dataset and base.dataset.get(key) != nd.get(key):
                hard.append((f"dataset.{key}", base.dataset.get(key), nd.get(key)))
    return hard, machine


def _group(diffs: dict[tuple[str, str, str], list[str]]) -> list[str]:
    out = []
    for (key, b, n), rids in diffs.items():
        shown = ", ".join(rids[:3]) + (f" and {len(rids) - 3} more" if len(rids) > 3 else "")
        out.append(f"{key} is {b} in the baseline but {n} in the run ({shown})")
    return out


def _weights_note(baseline: Baseline) -> list[str]:
    """A note when the baseline predates checkpoint identity: another checkpoint would go unnoticed."""
    old = sorted(r for r, e in baseline.entries.items() if any(k not in e.model for k in _CHECKPOINT_KEYS))
    if not old:
        return []
    shown = ", ".join(old[:3]) + (f" and {len(old) - 3} more" if len(old) > 3 else "")
    return [
        f"the baseline has no {' / '.join(_CHECKPOINT_KEYS)} ({shown}): saved before checkpoints were "
        "told apart, so a change of checkpoint is not detected; re-save it with `dfine-bench baseline save`"
    ]


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
    status = run.meta.get("status")
    if run.meta and status != "complete":
        result.problems.append(
            f"run {run.run_id} is {status!r}, not complete: finish it (re-run the same command) first"
        )

    base_models = {e.model_name for e in baseline.entries.values()}
    run_models = {e.model_name for e in run.entries.values()}
    if base_models != run_models:
        parts = []
        if base_models - run_models:
            parts.append(f"the run lacks {', '.join(sorted(base_models - run_models))}")
        if run_models - base_models:
            parts.append(f"the baseline lacks {', '.join(sorted(run_models - base_models))}")
        result.problems.append(
            f"another model set: {'; '.join(parts)} (save a new baseline if the suite's models changed)"
        )
    common_models = base_models & run_models
    missing = sorted(
        r for r, e in baseline.entries.items() if e.model_name in common_models and r not in run.entries
    )
    extra = sorted(
        r for r, e in run.entries.items() if e.model_name in common_models and r not in baseline.entries
    )
    if missing:
        result.problems.append(f"records in the baseline but not in the run: {', '.join(missing)}")
    if extra:
        result.problems.append(
            f"records in the run but not in the baseline: {', '.join(extra)} "
            "(save a new baseline to gate them)"
        )

    hard_diffs: dict[tuple[str, str, str], list[str]] = {}
    machine_diffs: dict[tuple[str, str, str], list[str]] = {}
    alpha, floor = tol["timing_alpha"], tol["timing_min_delta_ms"]
    for rid in sorted(set(baseline.entries) & set(run.entries)):
        base, new = baseline.entries[rid], run.entries[rid]
        status_row = check_status(base, new)
        if status_row is not None:  # before the setup: a record that did not run measured nothing
            result.rows.append(status_row)
            continue
        hard, machine = _differences(base, new)
        for key, b, n in hard:
            hard_diffs.setdefault((key, repr(b), repr(n)), []).append(rid)
        if hard:
            continue
        if machine:
            for key, b, n in machine:
                machine_diffs.setdefault((key, repr(b), repr(n)), []).append(rid)
            if allow_other_device:
                what = "; ".join(f"{k} {b!r} -> {n!r}" for k, b, n in machine)
                for metric in timing_metrics():
                    if metric in base.metrics:
                        result.rows.append(
                            Row(
                                rid,
                                metric,
                                base.metrics.get(metric),
                                new.metrics.get(metric),
                                NOT_COMPARED,
                                f"another machine ({what})",
                                _unit(metric),
                            )
                        )
            continue
        result.rows.extend(_compare_metrics(base, new, baseline, tol, alpha, floor))

    for (key, _, _), text in zip(hard_diffs, _group(hard_diffs)):
        if key.startswith("model."):
            result.problems.append(
                f"other weights: {text}; numbers of two checkpoints do not compare: save a new baseline "
                "for the new weights"
            )
        else:
            result.problems.append(f"another setup: {text}")
    if machine_diffs:
        grouped = _group(machine_diffs)
        if allow_other_device:
            result.notes.extend(f"timings not compared: {d}" for d in grouped)
        else:
            result.problems.extend(
                f"{'not comparable' if d.startswith('fingerprint.') else 'another machine'}: {d}; timings "
                "of two machines do not compare: save a baseline on this "
                "machine, or pass --allow-other-device to gate only accuracy, params and GFLOPs"
                for d in grouped
            )
    unclean = [r.record_id for r in result.rows if r.metric == "status" and r.verdict == OK]
    if unclean:
        result.notes.append(
            f"the baseline is not clean: {len(unclean)} record(s) failed or were skipped there too and are "
            f"not gated: {', '.join(unclean)}"
        )
    result.notes.extend(_weights_note(baseline))
    result.notes.extend(_version_notes(baseline, run))
    result.notes.extend(_ignored_run_tolerances(run, tol))
    return result


def _check_catalogue(baseline: Baseline) -> None:
    """Every metric the baseline holds must be in the catalogue (so that it has a gate rule)."""
    unknown = sorted({m for e in baseline.entries.values() for m in e.metrics if find_metric(m) is None})
    if unknown:
        raise BaselineError(
            f"{baseline.label}: metric(s) {', '.join(unknown)} are not in the metric catalogue, so no gate "
            "rule says how to compare them: register each with dfine_bench.records.metrics.register_metric "
            "(installing the plug-in that defines them), or re-save the baseline"
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
    for metric, b in base.metrics.items():
        if not gated_metric(metric):
            continue
        rule = find_metric(metric).gate  # type: ignore[union-attr]
        n = new.metrics.get(metric)
        if metric not in new.metrics:
            rows.append(
                Row(rid, metric, b, None, CANNOT, "metric missing in the run", _unit(metric), changed=True)
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
        if not _finite(n):
            rows.append(_not_finite_row(rid, metric, b, n, f"the run's {metric}"))
            continue
        if b is None:
            why = (
                "the baseline has no value: cannot gate it (re-save the baseline from a run that measured it)"
            )
            rows.append(Row(rid, metric, b, n, CANNOT, why, _unit(metric)))
            continue
        if n is None:
            rows.append(Row(rid, metric, b, n, CANNOT, "no value in the run", _unit(metric)))
            continue
        if rule == catalogue.EXACT:
            rows.append(check_exact(rid, metric, b, n, tol[metric]))
        else:
            rows.append(check_absolute(rid, metric, b, n, tol[metric]))
    return rows


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
