"""The gate on real tiny runs through the CLI: real regressions fail, a re-run passes.

Accuracy and complexity faults come from the toy ``toy_det_color`` (a colour-blob detector with
high AP on the generated data): ``TOY_BOX_SHIFT`` moves its boxes, ``TOY_WIDTH`` changes its
parameter count. The slowdown comes from ``toy_det_slow`` sleeping 5x longer per forward
(20 ms -> 100 ms), far beyond the latency rule's band (baseline p75 x 1.25) on a loaded machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_helpers import NO_TIMING, RunFn

from dfine_bench.checks import load_baseline
from dfine_bench.cli import main
from dfine_bench.data.generated import GeneratedParams, generate_dataset
from dfine_bench.records import load_records

pytestmark = pytest.mark.slow


def check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


def rows(text: str, verdict: str) -> list[str]:
    """Table lines of a check's output with this verdict."""
    return [line for line in text.splitlines() if f"  {verdict}  " in line]


@pytest.fixture(scope="module")
def accuracy(run_toy: RunFn, results: Path) -> tuple[Path, Path]:
    """A clean toy_det_color run (evaluation + params/GFLOPs) and its baseline."""
    run_dir = run_toy("acc_base", ["toy_det_color"], *NO_TIMING)
    out = results.parent / "baselines" / "acc.json"
    assert main(["baseline", "save", str(run_dir), "--out", str(out)]) == 0
    return run_dir, out


def test_baseline_keeps_samples_and_provenance(accuracy, timing) -> None:
    base = load_baseline(timing[1])
    assert base.provenance["run_id"] == "t_base"
    assert base.provenance["device_name"] and base.provenance["versions"]["torch"]
    assert "git_revision" in base.provenance and base.provenance["config_hash"]
    latency = base.entries["latency-toy_det_slow-eager-fp32-bs1"]
    (record,) = [r for r in load_records([timing[0]]) if r.record_id == latency.record_id]
    assert latency.samples_ms == pytest.approx(record.details["samples_ms"], abs=1e-4)
    assert latency.setup["threads"] == 1
    ap = load_baseline(accuracy[1]).entries["evaluation-toy_det_color-faster_coco_eval"].metrics["AP"]
    assert ap is not None and ap > 50, "toy_det_color should find the generated rectangles"


def test_rerun_of_the_same_model_passes(run_toy: RunFn, timing, capsys) -> None:
    again = run_toy("t_again", ["toy_det_slow"], TOY_SLEEP_S="0.02")
    code, out = check(capsys, "--baseline", timing[1], again)
    assert code == 0, out
    assert "latency-toy_det_slow-eager-fp32-bs1" in out and "PASS" in out


def test_slower_model_fails(run_toy: RunFn, timing, capsys, results: Path) -> None:
    slow = run_toy("t_slow", ["toy_det_slow"], TOY_SLEEP_S="0.1")
    md = results.parent / "slow.md"
    code, out = check(capsys, "--baseline", timing[1], slow, "--markdown", md)
    assert code == 1, out
    worse = rows(out, "WORSE")
    assert any("latency-toy_det_slow" in r and "latency_median" in r and "U-test" in r for r in worse), out
    assert any("throughput-toy_det_slow" in r for r in worse), out
    assert not any("evaluation-" in r or "complexity-" in r for r in worse), out
    text = md.read_text()
    assert "FAIL: regression" in text and "| **WORSE** |" in text


def test_ap_drop_fails(run_toy: RunFn, accuracy, capsys) -> None:
    shifted = run_toy("acc_shift", ["toy_det_color"], *NO_TIMING, TOY_BOX_SHIFT="0.05")
    code, out = check(capsys, "--baseline", accuracy[1], shifted)
    assert code == 1, out
    worse = rows(out, "WORSE")
    ap = [r for r in worse if r.split()[1] == "AP"]
    assert ap and "dropped" in ap[0], out
    # a tolerance wider than the drop passes AP (other COCO stats still have their own)
    _, wide = check(capsys, "--baseline", accuracy[1], shifted, "--tolerance", "AP=100")
    assert not [r for r in rows(wide, "WORSE") if r.split()[1] == "AP"], wide


def test_changed_parameter_count_fails(run_toy: RunFn, accuracy, capsys) -> None:
    wider = run_toy("acc_wide", ["toy_det_color"], *NO_TIMING, TOY_WIDTH="12")
    code, out = check(capsys, "--baseline", accuracy[1], wider)
    assert code == 1, out
    changed = rows(out, "CHANGED")
    assert any(r.split()[1] == "params" and "parameters" in r for r in changed), out
    assert not rows(out, "WORSE"), "AP is unchanged: only the architecture differs"


def _broken_dataset(tmp: Path) -> Path:
    """The QUICK generated dataset in its own cache folder, with one image file truncated."""
    params = GeneratedParams(num_images=6, image_size=(64, 96), seed=0)
    images, _ = generate_dataset(tmp / params.key(), params)
    victim = sorted(images.glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:20])
    return tmp


def test_failed_images_against_a_clean_baseline_fail(run_toy: RunFn, accuracy, capsys, results) -> None:
    cache = _broken_dataset(results.parent / "broken_data")
    broken = run_toy(
        "acc_broken",
        ["toy_det_color"],
        *NO_TIMING,
        f"dataset.cache_dir={cache}",
        "evaluation.max_failed_fraction=0.5",
    )
    code, out = check(capsys, "--baseline", accuracy[1], broken)
    assert code == 1, out
    assert any(r.split()[1] == "images_failed" and "image ids" in r for r in rows(out, "WORSE")), out


def test_failed_evaluation_against_a_clean_baseline_fails(run_toy: RunFn, accuracy, capsys, results) -> None:
    cache = _broken_dataset(results.parent / "broken_data_2")
    # with the default max_failed_fraction one unreadable image of six fails the evaluation
    failed = run_toy("acc_failed", ["toy_det_color"], *NO_TIMING, f"dataset.cache_dir={cache}", expect=1)
    code, out = check(capsys, "--baseline", accuracy[1], failed)
    assert code == 1, out
    assert any(r.split()[1] == "status" and "failed now" in r for r in rows(out, "WORSE")), out


def test_another_model_set_cannot_compare(accuracy, timing, capsys) -> None:
    code, out = check(capsys, "--baseline", accuracy[1], timing[0])
    assert code == 2, out
    assert "another model set" in out and "toy_det_color" in out and "toy_det_slow" in out


def test_suite_baseline_is_the_default(run_toy: RunFn, timing, capsys) -> None:
    run_dir = run_toy("t_suite", ["toy_det_slow"], f"suite.baseline={timing[1]}", TOY_SLEEP_S="0.02")
    code, out = check(capsys, run_dir)
    assert code == 0, out
    assert f"baseline: {timing[1]}" in out


def test_baseline_save_refuses_an_unclean_run(accuracy, results, capsys) -> None:
    failed = results / "acc_failed"
    if not failed.exists():
        pytest.skip("needs the failed-evaluation run of this module")
    out = results.parent / "unclean.json"
    capsys.readouterr()
    assert main(["baseline", "save", str(failed), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "evaluation-toy_det_color-faster_coco_eval (failed)" in err and "--allow-failed" in err
    assert not out.exists()
    assert main(["baseline", "save", str(failed), "--out", str(out), "--allow-failed"]) == 0
    doc = json.loads(out.read_text())
    assert doc["records"]["evaluation-toy_det_color-faster_coco_eval"]["status"] == "failed"
