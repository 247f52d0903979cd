"""The gate's rule per metric: one compared quantity (``Row``) from a baseline and a run entry.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from dfine_bench.checks.entries import Entry
from dfine_bench.records.metrics import find_metric

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


def unit_of(metric: str) -> str:
    d = find_metric(metric)
    return d.unit if d else ""


def finite_or_none(v: float | None) -> bool:
    return v is None or math.isfinite(v)


def not_finite_row(rid: str, metric: str, b: float | str | None, n: float | str | None, what: str) -> Row:
    why = f"{what} is not a finite number: a NaN or infinite measurement is a failure, never within tolerance"
    return Row(rid, metric, b, n, WORSE, why, unit_of(metric))


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
        return not_finite_row(rid, metric, None, None, f"{len(bad)} latency sample(s) of the run ({bad[0]})")
    b_med, b_up = _median_upper(base)
    n_med, _ = _median_upper(new)
    if not finite_or_none(n_med):
        return not_finite_row(rid, metric, b_med, n_med, "the run's median latency")
    if b_med is None or n_med is None:
        side = "baseline" if b_med is None else "run"
        return Row(rid, metric, b_med, n_med, CANNOT, f"no latency samples or median in the {side}", "ms")
    b_up = b_up if b_up is not None else b_med
    b_s, n_s = base.samples_ms or [], new.samples_ms or []
    p: float | None = None
    if len(b_s) >= MIN_SAMPLES and len(n_s) >= MIN_SAMPLES:
        p = float(mannwhitneyu(n_s, b_s, alternative="greater").pvalue)
    test = (
        f"U-test p={p:.2g}"
        if p is not None
        else f"no U-test (fewer than {MIN_SAMPLES} samples on a side: {len(b_s)} vs {len(n_s)})"
    )
    return _latency_verdict(base, new, (b_med, b_up, n_med), tol, (p, alpha, test), min_delta_ms)


def _latency_verdict(
    base: Entry,
    new: Entry,
    medians: tuple[float, float, float],
    tol: float,
    u_test: tuple[float | None, float, str],
    min_delta_ms: float,
) -> Row:
    """The latency row from the baseline median and upper quartile, the run's median and the U test."""
    rid, metric = new.record_id, "latency_median"
    b_med, b_up, n_med = medians
    p, alpha, test = u_test
    limit = b_up * (1 + tol)
    delta = n_med - b_med
    band = f"limit {limit:.4g} ms = baseline p{BAND_QUANTILE} {b_up:.4g} x {1 + tol:g}"
    above, big, significant = n_med > limit, delta > min_delta_ms, p is None or p < alpha
    ratio = f"x{n_med / b_med:.2f}" if b_med > 0 else ""
    if above and big and significant:
        why = f"median {n_med:.4g} ms ({ratio}) > {band}; +{delta:.3g} ms; {test} < {alpha:g}"
        return Row(rid, metric, b_med, n_med, WORSE, why + _unsteady_note(base, new), "ms")
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


def _unsteady_note(base: Entry, new: Entry) -> str:
    """Why a latency verdict may be the machine's, not the code's: a side whose timing was marked
    unstable or throttled when measured (``profiling.validity``). The verdict stands; this says it."""
    marked = [
        f"the {side}'s timing was marked {e.setup.get('stability')}"
        for side, e in (("baseline", base), ("run", new))
        if e.setup.get("stability") in ("unstable", "throttled")
    ]
    return f" ({'; '.join(marked)}: rerun on a quiet machine before believing it)" if marked else ""


def _spread(latency: Entry | None) -> float:
    """p75 / median of a latency record's samples (at least 1; 1 without one)."""
    med, upper = _median_upper(latency) if latency is not None else (None, None)
    return max(1.0, upper / med) if med and upper and med > 0 else 1.0


def check_throughput(
    base: Entry, new: Entry, base_latency: Entry | None, tol: float, min_delta_ms: float
) -> Row:
    """Throughput against a band widened by the baseline's latency spread (see the module docstring)."""
    rid, metric = new.record_id, "throughput"
    b, n = base.metrics.get(metric), new.metrics.get(metric)
    if not finite_or_none(n):
        return not_finite_row(rid, metric, b, n, "the run's throughput")
    if b is None or n is None or b <= 0:
        side = "baseline" if b is None or b <= 0 else "run"
        return Row(rid, metric, b, n, CANNOT, f"no throughput value in the {side}", "img/s")
    spread = _spread(base_latency)
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
    unit = unit_of(metric)
    changed = n != b
    if -delta > tol:
        why = f"dropped {-delta:.3g} points (> tolerance {tol:g})"
        return Row(rid, metric, b, n, WORSE, why, unit, changed)
    if delta > tol:
        return Row(rid, metric, b, n, BETTER, f"rose {delta:.3g} points", unit, changed)
    why = f"{delta:+.3g} points, within {tol:g}" if changed else "unchanged"
    return Row(rid, metric, b, n, OK, why, unit, changed)


def _counts_parameters(metric: str) -> bool:
    return unit_of(metric) == "M"  # params, params_total: exact parameter counts in millions


def _rounded(metric: str, v: float) -> float:
    if _counts_parameters(metric):
        return round(v, PARAMS_DECIMALS)
    return float(f"{v:.{GFLOPS_DIGITS}g}")


def check_exact(rid: str, metric: str, b: float, n: float, tol: float) -> Row:
    """Params / GFLOPs: equal after rounding (or within an absolute ``tol``), in either direction."""
    rb, rn = _rounded(metric, b), _rounded(metric, n)
    unit = unit_of(metric)
    rule = "M to 6 decimals" if _counts_parameters(metric) else f"{GFLOPS_DIGITS} significant digits"
    if abs(rn - rb) > tol + 1e-12:
        why = f"changed by {rn - rb:+.6g} {unit} (compared at {rule}; must be equal)"
        if _counts_parameters(metric):
            why += f": {round((rn - rb) * 1e6):+d} parameters"
        return Row(rid, metric, b, n, CHANGED, why, unit)
    return Row(rid, metric, b, n, OK, f"equal at {rule}", unit, changed=rb != rn)


_IMAGE_COUNTS = ("images_failed", "images_skipped", "images_seen")


def check_images(base: Entry, new: Entry) -> list[Row]:
    """Failed, skipped and evaluated image counts of an evaluation record."""
    rid = new.record_id
    missing = [
        Row(rid, m, base.metrics[m], None, CANNOT, "metric missing in the run", "count")
        for m in _IMAGE_COUNTS
        if m in base.metrics and m not in new.metrics
    ]
    if missing:
        return missing
    broken = [
        not_finite_row(rid, m, base.metrics.get(m), new.metrics.get(m), m)
        for m in _IMAGE_COUNTS
        if not finite_or_none(new.metrics.get(m))
    ]
    if broken:
        return broken
    return [*_failed_images(base, new), *_skipped_images(base, new), *_seen_images(base, new)]


def _failed_images(base: Entry, new: Entry) -> list[Row]:
    if "images_failed" not in new.metrics and "images_failed" not in base.metrics:
        return []
    bf, nf = base.metrics.get("images_failed") or 0, new.metrics.get("images_failed") or 0
    if nf <= bf:
        return [Row(new.record_id, "images_failed", bf, nf, OK, "no more failures", "count", nf != bf)]
    ids = [str(f.get("image_id", f)) if isinstance(f, dict) else str(f) for f in new.failed_images]
    shown = f" (image ids {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})" if ids else ""
    why = f"{nf:.0f} image(s) failed, baseline {bf:.0f}{shown}: see details.failed_images"
    return [Row(new.record_id, "images_failed", bf, nf, WORSE, why, "count")]


def _skipped_images(base: Entry, new: Entry) -> list[Row]:
    if "images_skipped" not in new.metrics and "images_skipped" not in base.metrics:
        return []
    bs, ns = base.metrics.get("images_skipped") or 0, new.metrics.get("images_skipped") or 0
    if ns <= bs:
        return [Row(new.record_id, "images_skipped", bs, ns, OK, "no more skips", "count", ns != bs)]
    why = (
        f"{ns:.0f} image(s) skipped (resumed from an earlier process or filtered), baseline "
        f"{bs:.0f}: this AP is not all this code's; re-run with a fresh output.run_id"
    )
    return [Row(new.record_id, "images_skipped", bs, ns, CANNOT, why, "count")]


def _seen_images(base: Entry, new: Entry) -> list[Row]:
    bseen, nseen = base.metrics.get("images_seen"), new.metrics.get("images_seen")
    if bseen is None or nseen is None or bseen == nseen:
        return []
    why = f"evaluated {nseen:.0f} images, the baseline {bseen:.0f}: another dataset or subset"
    return [Row(new.record_id, "images_seen", bseen, nseen, CANNOT, why, "count")]


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
