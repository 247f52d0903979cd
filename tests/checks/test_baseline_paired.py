"""Issue 21 item 2: a run paired with its baseline. ``baseline save`` keeps an evaluation record's
``details["bootstrap"]``; ``check`` shows Δ = run − baseline of AP/AP50/AP75 with its interval and
p-value next to the tolerance verdict, without changing the exit code; where the two cannot be
paired it says why in one note. The records are fabricated (a generated 8-image dataset and
synthetic bootstrap replicates), written to real run folders and checked through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dfine_bench.checks.baseline import load_baseline
from dfine_bench.checks.rules import BETTER, OK, WORSE
from dfine_bench.cli import main
from dfine_bench.records import metric
from dfine_bench.records.schema import DatasetInfo, ModelInfo, ResultRecord, Setup
from dfine_bench.records.store import RunStore

EVAL = "evaluation-toy-faster_coco_eval"
B = 200
STATS = ("AP", "AP50", "AP75")
POINT = {"AP": 40.0, "AP50": 60.0, "AP75": 42.0}
REPO = Path(__file__).resolve().parents[2]


def _bootstrap(
    point: dict[str, float], shift: float, noise_seed: int, images_sha: str = "ids-1"
) -> dict[str, Any]:
    """A bootstrap as ``evaluation/bootstrap.summarize`` writes it: replicates around each stat's value.

    Both sides share the image-level part of the noise (``common``, as when the same image weights
    resample two evaluations) and differ by ``shift`` plus a small own part."""
    common = np.random.default_rng(0).normal(0.0, 2.0, B)
    own = np.random.default_rng(noise_seed).normal(0.0, 0.05, B)
    values = {n: [round(float(v), 6) for v in point[n] + common + own] for n in STATS}
    return {
        "method": "fabricated for a test",
        "replicates": B,
        "seed": 0,
        "confidence": 0.95,
        "images": 8,
        "image_ids_sha256": images_sha,
        "weights_sha256": f"weights-of-{images_sha}",
        "point": dict(point),
        "values": values,
    }


def _evaluation(run_id: str, point: dict[str, float], boot: dict[str, Any] | None) -> ResultRecord:
    return ResultRecord(
        run_id,
        EVAL,
        "evaluation",
        ModelInfo(name="toy", family="toy", weights_source="random-init", random_init=True, weights_seed=0),
        Setup(device="cpu", device_name="CPU X", engine="faster_coco_eval"),
        environment={},
        metrics={**{n: metric(n, v) for n, v in point.items()}, "images_seen": metric("images_seen", 8)},
        dataset=DatasetInfo(name="generated", kind="generated", generated=True, num_images=8),
        details={"bootstrap": boot} if boot is not None else {},
    )


def _run(root: Path, run_id: str, shift: float, noise_seed: int, **kw: Any) -> Path:
    point = {n: v + shift for n, v in POINT.items()}
    boot = _bootstrap(point, shift, noise_seed, **kw)
    store = RunStore(root / "results" / run_id)
    store.records_dir.mkdir(parents=True)
    store.write_meta({"run_id": run_id, "status": "complete", "suite": "t"})
    store.write_record(_evaluation(run_id, point, boot))
    return store.run_dir


def _expected(base: Path, run: Path, stat: str) -> tuple[float, float, float, float]:
    """Δ, the 95% percentile interval and the two-sided bootstrap p, straight from the records."""
    rb, rr = (json.loads(next((p / "records").glob("*.json")).read_text()) for p in (base, run))
    vb = np.asarray(rb["details"]["bootstrap"]["values"][stat])
    vr = np.asarray(rr["details"]["bootstrap"]["values"][stat])
    d = vr - vb
    lo, hi = np.percentile(d, [2.5, 97.5])
    p = min(1.0, 2 * (1 + min(np.sum(d <= 0), np.sum(d >= 0))) / (B + 1))
    delta = rr["metrics"][stat]["value"] - rb["metrics"][stat]["value"]
    return delta, float(lo), float(hi), float(p)


def _check(capsys: pytest.CaptureFixture[str], baseline: Path, run: Path, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", "--baseline", str(baseline), str(run), *extra])
    return code, capsys.readouterr().out


def _paired_line(out: str, stat: str) -> str:
    section = out.split("paired Δ run − baseline", 1)[1]
    return next(line for line in section.splitlines() if line.startswith(EVAL) and f" {stat} " in line)


@pytest.fixture
def base(tmp_path: Path) -> tuple[Path, Path]:
    run = _run(tmp_path, "base", 0.0, noise_seed=1)
    out = tmp_path / "b.json"
    assert main(["baseline", "save", str(run), "--out", str(out)]) == 0
    return run, out


def test_the_baseline_keeps_only_the_bootstrap_of_details(base: tuple[Path, Path]) -> None:
    run, out = base
    saved = json.loads(out.read_text())["records"][EVAL]
    record = json.loads(next((run / "records").glob("*.json")).read_text())
    assert saved["details"] == {"bootstrap": record["details"]["bootstrap"]}
    assert load_baseline(out).entries[EVAL].bootstrap == record["details"]["bootstrap"]


@pytest.mark.parametrize(
    ("shift", "code", "verdict"),
    [(1.5, 0, BETTER), (-0.2, 0, OK), (-2.0, 1, WORSE)],
    ids=["better", "within-tolerance", "regression"],
)
def test_check_shows_the_paired_difference_and_keeps_the_tolerance_exit_code(
    base: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    shift: float,
    code: int,
    verdict: str,
) -> None:
    base_run, baseline = base
    run = _run(tmp_path, "new", shift, noise_seed=2)
    got, out = _check(capsys, baseline, run)
    assert got == code  # the tolerance rule (0.3 points) decides, significant or not
    assert "informational: the exit code is the tolerance rule's" in out
    for stat in STATS:
        delta, lo, hi, p = _expected(base_run, run, stat)
        line = _paired_line(out, stat)
        assert f"{delta:+.2f} [{lo:+.2f}, {hi:+.2f}] 95%" in line
        assert line.split()[-1] == (f"{p:.3f}" if p >= 0.001 else "<0.001")
        assert line.split()[2] == verdict
    # -0.2 points is inside the tolerance and yet beyond the noise of these images: p is small
    assert shift != -0.2 or _expected(base_run, run, "AP")[3] < 0.05


def test_markdown_has_the_paired_table(
    base: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base_run, baseline = base
    run = _run(tmp_path, "new", 1.5, noise_seed=2)
    md = tmp_path / "check.md"
    assert _check(capsys, baseline, run, "--markdown", str(md))[0] == 0
    text = md.read_text()
    delta, lo, hi, _ = _expected(base_run, run, "AP75")
    row = next(
        line for line in text.splitlines() if f"`{EVAL}`" in line and "`AP75`" in line and "95%" in line
    )
    assert f"{delta:+.2f} [{lo:+.2f}, {hi:+.2f}] 95%" in row
    assert "informational: the exit code is the tolerance rule's" in text


def test_an_old_baseline_without_bootstrap_still_checks_and_says_why_not_paired(
    base: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, baseline = base
    doc = json.loads(baseline.read_text())
    for rec in doc["records"].values():
        del rec["details"]  # the format before baselines kept the bootstrap
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    assert load_baseline(old).entries[EVAL].bootstrap is None
    code, out = _check(capsys, old, _run(tmp_path, "new", 0.1, noise_seed=2))
    assert code == 0
    assert f"{EVAL}: not paired: baseline has no bootstrap" in out
    assert "[" not in out.split("paired Δ run − baseline", 1)[1].split("rules:")[0]  # no interval shown


def test_another_image_set_is_a_note_not_an_error(
    base: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, baseline = base
    code, out = _check(capsys, baseline, _run(tmp_path, "new", 0.1, noise_seed=2, images_sha="ids-2"))
    assert code == 0
    assert f"{EVAL}: not paired: other image set" in out


def test_a_malformed_bootstrap_in_a_baseline_is_one_line_exit_2(
    base: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base_run, baseline = base
    doc = json.loads(baseline.read_text())
    doc["records"][EVAL]["details"] = {"bootstrap": [1, 2]}
    baseline.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["check", "--baseline", str(baseline), str(base_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "details.bootstrap" in err and len(err.splitlines()) == 1


def test_the_committed_ci_baseline_still_loads() -> None:
    path = REPO / "results" / "baselines" / "ci.json"
    if not path.is_file():
        pytest.skip("no committed CI baseline in this checkout")
    assert load_baseline(path).entries
