"""Defects of the gate found by hostile probes (issue 15): NaN switched it off (3), and the run
under test could loosen its own tolerances (7). Runs are written by hand (no model is built)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from dfine_bench.checks.baseline import Entry, load_run
from dfine_bench.checks.gate import CANNOT, WORSE, Baseline, compare
from dfine_bench.checks.rules import check_latency
from dfine_bench.cli import main
from dfine_bench.records import metric
from dfine_bench.records.schema import DatasetInfo, ModelInfo, ResultRecord, Setup
from dfine_bench.records.store import RunStore

SAMPLES = [20.0 + 0.01 * i for i in range(15)]


def write_run(
    folder: Path,
    *,
    ap: float = 30.0,
    samples: list[float] | None = None,
    suite_tolerances: dict[str, float] | None = None,
) -> Path:
    """A finished run with one evaluation and one latency record, as the runner writes them."""
    store = RunStore(folder)
    model = ModelInfo(name="toy", family="toy", weights_source="random-init", weights_seed=0)
    setup = Setup(device="cpu", device_name="Test CPU", backend="eager", threads=1)
    data = DatasetInfo(name="generated", kind="generated", generated=True, num_images=8)
    lat = samples if samples is not None else SAMPLES
    records = [
        ResultRecord(
            run_id=folder.name,
            record_id="evaluation-toy",
            task="evaluation",
            model=model,
            setup=setup,
            environment={},
            dataset=data,
            metrics={"AP": metric("AP", ap), "images_seen": metric("images_seen", 8)},
        ),
        ResultRecord(
            run_id=folder.name,
            record_id="latency-toy-eager-fp32-bs1",
            task="latency",
            model=model,
            setup=setup,
            environment={},
            metrics={"latency_median": metric("latency_median", sorted(lat)[len(lat) // 2])},
            details={"samples_ms": lat},
        ),
    ]
    for r in records:
        store.write_record(r)
    config = {"suite": {"tolerances": suite_tolerances or {}}}
    store.write_meta({"run_id": folder.name, "status": "complete", "suite": "toy", "config": config})
    return folder


@pytest.fixture
def baseline_file(tmp_path: Path) -> Path:
    run = write_run(tmp_path / "base")
    out = tmp_path / "baseline.json"
    assert main(["baseline", "save", str(run), "--out", str(out)]) == 0
    return out


def check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main(["check", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- 15.3: NaN switches the gate off ----------------------------------------------------------------
def test_a_nan_ap_in_the_baseline_file_is_refused(baseline_file: Path, tmp_path: Path, capsys) -> None:
    """Probe: a baseline whose AP is NaN passed a 2.56-point drop ("+nan points, within")."""
    doc = json.loads(baseline_file.read_text())
    doc["records"]["evaluation-toy"]["metrics"]["AP"] = math.nan
    baseline_file.write_text(json.dumps(doc))  # json writes the NaN literal, as a hand edit would
    dropped = write_run(tmp_path / "dropped", ap=30.0 - 2.56)
    code, out = check(capsys, "--baseline", baseline_file, dropped)
    assert code == 2, out
    assert "'AP'" in out and "not a finite number" in out and "evaluation-toy" in out


def test_baseline_save_refuses_a_nan_metric(tmp_path: Path, capsys) -> None:
    """Probe: `baseline save` turned a NaN AP into null, which the gate then reported as not gated."""
    run = write_run(tmp_path / "nan", ap=math.nan)
    out = tmp_path / "b.json"
    assert main(["baseline", "save", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "metric 'AP' is nan" in err and "evaluation-toy" in err
    assert not out.exists()


def test_a_nan_metric_in_the_run_is_a_failure(baseline_file: Path, tmp_path: Path, capsys) -> None:
    run = write_run(tmp_path / "nan_run", ap=math.nan)
    assert load_run(run).entries["evaluation-toy"].metrics["AP"] != 30.0  # kept as NaN, not null
    code, out = check(capsys, "--baseline", baseline_file, run)
    assert code == 1, out
    assert "not a finite number" in out


def test_nan_latency_samples_never_pass(baseline_file: Path, tmp_path: Path, capsys) -> None:
    """Probe: NaN latency samples passed a 2x slowdown (a NaN median makes every band test false)."""
    slow = write_run(tmp_path / "slow", samples=[2 * s for s in SAMPLES])
    doc = json.loads(baseline_file.read_text())
    doc["records"]["latency-toy-eager-fp32-bs1"]["samples_ms"][:5] = [math.nan] * 5
    baseline_file.write_text(json.dumps(doc))
    code, out = check(capsys, "--baseline", baseline_file, slow)
    assert code == 2, out
    assert "latency-toy-eager-fp32-bs1" in out and "not finite" in out
    # NaN samples in the run under test: a failure in its own right, not "within"
    base = Entry("r", "latency", metrics={"latency_median": 20.0}, samples_ms=SAMPLES)
    new = Entry("r", "latency", metrics={"latency_median": 20.0}, samples_ms=SAMPLES[:10] + [math.nan] * 5)
    row = check_latency(base, new, 0.25, 0.01, 0.1)
    assert row.verdict == WORSE and "latency sample(s)" in row.why
    new = Entry("r", "latency", metrics={"latency_median": math.nan}, samples_ms=[])
    assert check_latency(base, new, 0.25, 0.01, 0.1).verdict == WORSE
    run = write_run(tmp_path / "nan_samples", samples=SAMPLES[:10] + [math.nan] * 5)
    assert any(math.isnan(s) for s in load_run(run).entries["latency-toy-eager-fp32-bs1"].samples_ms or [])


def test_a_baseline_without_a_value_cannot_gate_it(tmp_path: Path) -> None:
    """A null in the baseline (an old NaN) is "cannot compare", never "not gated" (a pass)."""
    run = load_run(write_run(tmp_path / "run", ap=10.0))
    entries = copy.deepcopy(run.entries)
    entries["evaluation-toy"].metrics["AP"] = None
    result = compare(Baseline(entries=entries), run)
    (row,) = [r for r in result.rows if r.metric == "AP"]
    assert row.verdict == CANNOT and result.exit_code == 2


# -- 15.7: the run under test can loosen its own gate -----------------------------------------------
def test_the_run_cannot_loosen_its_own_tolerances(baseline_file: Path, tmp_path: Path, capsys) -> None:
    """Probe: the run's suite.tolerances overrode the baseline's, so a 3x slowdown passed."""
    slow = write_run(
        tmp_path / "slow", samples=[3 * s for s in SAMPLES], suite_tolerances={"latency_median": 5.0}
    )
    code, out = check(capsys, "--baseline", baseline_file, slow)
    assert code == 1, out
    assert "suite.tolerances (latency_median=5) are not used" in out
    # the command line may still set it, and says so
    code, out = check(capsys, "--baseline", baseline_file, slow, "--tolerance", "latency_median=5")
    assert code == 0, out
    assert "--tolerance" in out
