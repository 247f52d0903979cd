"""The gate's rules on hand-made samples and entries: noise passes, real changes fail."""

from __future__ import annotations

import numpy as np
import pytest

from dfine_bench.checks.baseline import BaselineError, Entry, compact_samples, parse_baseline
from dfine_bench.checks.gate import DEFAULT_TOLERANCES, resolve_tolerances
from dfine_bench.checks.rules import (
    BETTER,
    CANNOT,
    CHANGED,
    OK,
    WORSE,
    check_absolute,
    check_exact,
    check_latency,
    check_status,
    check_throughput,
)

TOL, ALPHA, FLOOR = 0.25, 0.01, 0.1


def latency(samples: np.ndarray | list[float], rid: str = "latency-m-eager-fp32-bs1") -> Entry:
    s = [float(x) for x in samples]
    return Entry(rid, "latency", metrics={"latency_median": float(np.median(s))}, samples_ms=s)


def noisy(
    rng: np.random.Generator, median_ms: float, n: int = 15, cv: float = 0.1, stalls: float = 0.1
) -> np.ndarray:
    """Latency-like samples: log-normal around the median, a fraction ``stalls`` of calls 3x slower."""
    s = median_ms * rng.lognormal(0.0, cv, n)
    s[rng.random(n) < stalls] *= 3.0
    return s


def _verdicts(rng: np.random.Generator, ratio: float, times: int, **kw: float) -> list[str]:
    return [
        check_latency(
            latency(noisy(rng, 40, **kw)), latency(noisy(rng, 40 * ratio, **kw)), TOL, ALPHA, FLOOR
        ).verdict
        for _ in range(times)
    ]


def test_same_distribution_passes_again_and_again() -> None:
    rng = np.random.default_rng(0)
    assert _verdicts(rng, 1.0, 500).count(WORSE) == 0
    # a very noisy machine (a quarter of the calls stall, 30% jitter): at most 1 in 100 re-runs fails,
    # when most of a run's calls happen to stall
    assert _verdicts(rng, 1.0, 500, stalls=0.25, cv=0.3).count(WORSE) <= 5


def test_a_real_slowdown_fails() -> None:
    rng = np.random.default_rng(1)
    assert _verdicts(rng, 2.0, 200, stalls=0.0).count(WORSE) == 200
    # with one call in ten stalling 3x, a baseline with many stalls has a wide band: most still fail
    assert _verdicts(rng, 2.0, 200).count(WORSE) >= 180
    row = check_latency(
        latency(noisy(rng, 40, stalls=0)), latency(noisy(rng, 80, stalls=0)), TOL, ALPHA, FLOOR
    )
    assert "U-test" in row.why and "p75" in row.why


def test_a_slowdown_measured_on_an_unsteady_machine_says_so() -> None:
    """The verdict stands (a 2x slowdown fails), but the row says which side was marked unstable."""
    rng = np.random.default_rng(2)
    base, new = latency(noisy(rng, 40, stalls=0)), latency(noisy(rng, 80, stalls=0))
    assert "marked" not in check_latency(base, new, TOL, ALPHA, FLOOR).why
    new.setup["stability"] = "throttled"
    row = check_latency(base, new, TOL, ALPHA, FLOOR)
    assert row.verdict == WORSE and "the run's timing was marked throttled" in row.why


def test_faster_is_better_not_a_failure() -> None:
    rng = np.random.default_rng(2)
    row = check_latency(latency(noisy(rng, 40, cv=0.02)), latency(noisy(rng, 20, cv=0.02)), TOL, ALPHA, FLOOR)
    assert row.verdict == BETTER


def test_above_the_band_but_not_significant_passes() -> None:
    base = latency([10.0] * 12)
    # 7 of 12 calls stalled: the median is far above the band, but the U test cannot tell
    new = latency([20.0] * 7 + [1.0] * 5)
    row = check_latency(base, new, TOL, ALPHA, FLOOR)
    assert row.verdict == OK and "not significant" in row.why


def test_below_the_noise_floor_passes() -> None:
    row = check_latency(latency([0.20] * 12), latency([0.28] * 12), TOL, ALPHA, FLOOR)
    assert row.verdict == OK and "noise floor" in row.why
    assert check_latency(latency([0.20] * 12), latency([0.28] * 12), TOL, ALPHA, 0.05).verdict == WORSE


def test_few_samples_skip_the_u_test_and_say_so() -> None:
    row = check_latency(latency([10.0, 10.5, 11.0]), latency([30.0, 31.0, 29.0]), TOL, ALPHA, FLOOR)
    assert row.verdict == WORSE and "no U-test" in row.why


def test_quantiles_stand_in_for_many_samples() -> None:
    rng = np.random.default_rng(3)
    many = noisy(rng, 40, n=5000)
    kept, kind, n = compact_samples(many)
    assert kind == "quantiles" and n == 5000 and len(kept) == 101
    assert np.median(kept) == pytest.approx(np.median(many), rel=1e-9)
    slower = Entry("x", "latency", samples_ms=list(noisy(rng, 60)), metrics={})
    assert check_latency(Entry("x", "latency", samples_ms=kept), slower, TOL, ALPHA, FLOOR).verdict == WORSE


def test_throughput_band_widens_with_the_baselines_latency_spread() -> None:
    base = Entry("throughput-m-eager-fp32", "throughput", metrics={"throughput": 100.0})
    new = Entry("throughput-m-eager-fp32", "throughput", metrics={"throughput": 70.0})
    tight = latency([10.0] * 12)
    spread = latency([10.0] * 8 + [16.0] * 4)  # p75 = 1.6 x median
    assert check_throughput(base, new, tight, TOL, FLOOR).verdict == WORSE
    assert check_throughput(base, new, spread, TOL, FLOOR).verdict == OK
    assert check_throughput(base, new, None, TOL, FLOOR).verdict == WORSE
    missing = Entry("throughput-m-eager-fp32", "throughput", metrics={"throughput": None})
    assert check_throughput(base, missing, tight, TOL, FLOOR).verdict == CANNOT


def test_accuracy_uses_absolute_points() -> None:
    assert check_absolute("e", "AP", 40.0, 39.69, 0.3).verdict == WORSE
    assert check_absolute("e", "AP", 40.0, 39.71, 0.3).verdict == OK
    assert check_absolute("e", "AP", 40.0, 41.0, 0.3).verdict == BETTER
    assert not check_absolute("e", "AP", 40.0, 40.0, 0.3).changed


def test_params_and_gflops_must_be_equal_either_way() -> None:
    one_param = check_exact("c", "params", 3.776512, 3.776513, 0.0)
    assert one_param.verdict == CHANGED and "+1 parameters" in one_param.why
    assert check_exact("c", "params", 3.776512, 3.776511, 0.0).verdict == CHANGED
    assert check_exact("c", "params", 3.776512, 3.776512, 0.0).verdict == OK
    assert check_exact("c", "gflops", 7.12345, 7.12349, 0.0).verdict == OK  # 4 significant digits
    assert check_exact("c", "gflops", 7.123, 7.125, 0.0).verdict == CHANGED
    assert check_exact("c", "gflops", 7.123, 7.125, 0.01).verdict == OK


@pytest.mark.parametrize(
    ("base", "new", "verdict"),
    [
        ("ok", "failed", WORSE),
        ("ok", "skipped", CANNOT),
        ("failed", "failed", OK),
        ("skipped", "ok", BETTER),
        ("skipped", "failed", WORSE),
        ("failed", "skipped", CANNOT),
    ],
)
def test_record_status(base: str, new: str, verdict: str) -> None:
    row = check_status(Entry("r", "latency", status=base), Entry("r", "latency", status=new, reason="why"))
    assert row is not None and row.verdict == verdict
    assert check_status(Entry("r", "latency"), Entry("r", "latency")) is None


def test_tolerance_layers_and_errors() -> None:
    tol, src = resolve_tolerances([("baseline", {"AP": 1.0, "latency_median": 0.4}), ("suite", {"AP": 0.5})])
    assert tol["AP"] == 0.5 and src["AP"] == "suite"
    assert tol["latency_median"] == 0.4 and src["latency_median"] == "baseline"
    assert tol["throughput"] == DEFAULT_TOLERANCES["throughput"] and src["throughput"] == "default"
    with pytest.raises(BaselineError, match=r"suite: tolerance for 'APP'.*valid keys"):
        resolve_tolerances([("suite", {"APP": 1.0})])
    with pytest.raises(BaselineError, match="must be a number >= 0"):
        resolve_tolerances([("suite", {"AP": -1})])
    with pytest.raises(BaselineError, match="timing_alpha"):
        resolve_tolerances([("suite", {"timing_alpha": 2})])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a dfine-bench baseline"),
        ({"format": "something-else"}, "not a dfine-bench baseline"),
        ({"format": "dfine-bench-baseline", "format_version": 1, "record_schema_version": 1}, "'provenance'"),
        (
            {
                "format": "dfine-bench-baseline",
                "format_version": 1,
                "record_schema_version": 1,
                "provenance": {},
                "records": {
                    "r": {"task": "latency", "status": "ok", "model": {}, "setup": {}, "metrics": {"x": "1"}}
                },
            },
            "metric 'x' should be a number",
        ),
    ],
)
def test_parse_baseline_names_the_problem(doc: object, message: str) -> None:
    with pytest.raises(BaselineError, match=message):
        parse_baseline(doc)
