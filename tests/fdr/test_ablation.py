"""The seed-paired ablation: its statistics, its refusals, paired initial weights, a tiny run."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dfine_bench.errors import ConfigError, DfineBenchError
from dfine_bench.training.ablation import LABEL, MARKER, AblationSettings, build_arm, run_ablation
from dfine_bench.training.ablation_report import ablation_markdown
from dfine_bench.training.ablation_stats import (
    detectable_effect,
    holm,
    min_seeds,
    paired_tests,
    sign_flip_p,
)


def test_sign_flip_test_is_exact() -> None:
    # all three differences positive: only all-plus and all-minus reach |mean| = 2, 2 of 2^3
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    d = [0.5, -1.0, 2.0, 1.5, 0.25]
    observed = abs(np.mean(d))
    count = sum(
        abs(np.mean([s * x for s, x in zip(signs, d)])) >= observed - 1e-12
        for signs in itertools.product((1, -1), repeat=len(d))
    )
    assert sign_flip_p(d) == pytest.approx(count / 32)
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0


def test_the_smallest_p_sets_the_fewest_seeds() -> None:
    # one comparison at 0.01 needs 8 seeds (2/2^8 < 0.01 <= 2/2^7); three with Holm at 0.05 need 7
    assert min_seeds(0.01, 1) == 8 and 2 / 2**8 < 0.01 <= 2 / 2**7
    assert min_seeds(0.05, 3) == 7 and 2 / 2**7 < 0.05 / 3 <= 2 / 2**6
    with pytest.raises(ConfigError, match=r"fewer than 7 seeds; use --seeds 7"):
        AblationSettings(seeds=tuple(range(6))).validate()
    AblationSettings(seeds=tuple(range(7))).validate()
    with pytest.raises(ConfigError, match="--alpha"):
        AblationSettings(alpha=1.5).validate()


def test_holm_and_the_detectable_effect_follow_their_formulas() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    from scipy import stats

    expected = (stats.t.ppf(1 - 0.05 / 6, 7) + stats.t.ppf(0.8, 7)) * 2.0 / math.sqrt(8)
    assert detectable_effect(2.0, 8, 0.05 / 3) == pytest.approx(expected)


def test_paired_tests_use_per_seed_differences() -> None:
    base = [50.0, 60.0, 55.0, 70.0, 65.0, 52.0, 58.0, 61.0]
    fdr = [b + 1.0 for b in base]  # +1 on every seed: huge seed spread, perfectly consistent gain
    golsd = [b + (0.5 if i % 2 else -0.5) for i, b in enumerate(base)]
    tests = paired_tests({"baseline": base, "fdr": fdr, "fdr_go_lsd": golsd}, "AP", 0.05)
    by = {(t.arm, t.reference): t for t in tests}
    assert by["fdr", "baseline"].p_value == pytest.approx(2 / 256) and by["fdr", "baseline"].significant
    assert by["fdr_go_lsd", "baseline"].mean_difference == pytest.approx(0.0)
    assert not by["fdr_go_lsd", "baseline"].significant
    gl = by["fdr_go_lsd", "fdr"]
    assert gl.mean_difference == pytest.approx(-1.0) and gl.significant  # GO-LSD's own share is tested
    assert gl.min_p == pytest.approx(2 / 256)


def test_every_shared_module_starts_from_the_baselines_weights() -> None:
    import torch

    settings = AblationSettings(input_size=64)
    base = build_arm(settings, "baseline", 3).model.state_dict()
    arm = build_arm(settings, "fdr_go_lsd", 3)
    own = arm.model.state_dict()
    shared = [k for k in base if k in own and own[k].shape == base[k].shape]
    assert arm.shared_initial_tensors == len(shared) > 100
    assert all(torch.equal(own[k], base[k]) for k in shared)
    assert any("decoder.fdr" in k for k in own if k not in base)  # the head is the difference
    other = build_arm(settings, "baseline", 4).model.state_dict()
    assert not all(torch.equal(other[k], base[k]) for k in shared if base[k].dtype.is_floating_point)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--lr", "inf"], "--lr must be a positive finite number"),
        (["--threads", "-1"], "--threads must be at least 1"),
        (["--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
        (["--baseline", "rtdetr_r18+fdr"], "--baseline must be rtdetr_r18 or rtdetr_r50"),
        (["--seeds", "3"], "use --seeds 7"),
        (["--layout", "hard"], "layout must be one of"),
    ],
)
def test_ablate_refuses_bad_settings_in_one_line(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dfine_bench.cli import main

    assert main(["ablate", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_ablate_never_writes_into_a_folder_it_did_not_make(tmp_path: Path) -> None:
    """Probe B: --out a user's folder deleted data/train/images/* and overwrote ablation.md."""
    user = tmp_path / "mine"
    (user / "data" / "train" / "images").mkdir(parents=True)
    photo = user / "data" / "train" / "images" / "holiday.png"
    photo.write_bytes(b"not generated")
    (user / "ablation.md").write_text("my notes")
    with pytest.raises(DfineBenchError, match=r"--out: .* holds files dfine-bench did not write"):
        run_ablation(AblationSettings(steps=1, train_images=2, eval_images=2, input_size=64), user)
    assert photo.read_bytes() == b"not generated" and (user / "ablation.md").read_text() == "my notes"
    assert not (user / MARKER).exists()


@pytest.mark.slow
def test_tiny_ablation_runs_resumes_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = AblationSettings(
        seeds=tuple(range(7)),
        steps=1,
        batch_size=2,
        warmup_steps=1,
        input_size=64,
        train_images=4,
        eval_images=3,
    )
    result = run_ablation(settings, tmp_path)
    assert [(r["arm"], r["seed"]) for r in result.runs[:3]] == [
        ("baseline", 0),
        ("fdr", 0),
        ("fdr_go_lsd", 0),
    ]
    assert all(r["git_revision"] for r in result.runs)
    params = result.summary["parameters"]
    assert params["fdr_go_lsd"] == params["fdr"] > params["baseline"]  # the FDR head is the only difference
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert saved["summary"]["label"] == LABEL and len(saved["runs"]) == 21
    tests = saved["summary"]["tests"]
    assert {(t["arm"], t["reference"], t["metric"]) for t in tests} == {
        (a, r, m)
        for a, r in (("fdr", "baseline"), ("fdr_go_lsd", "baseline"), ("fdr_go_lsd", "fdr"))
        for m in ("AP", "AP75", "AP90")
    }
    assert isinstance(saved["summary"]["decision"]["text"], str)
    assert "torch" in saved["depends_on"]

    # a rerun with the same settings trains nothing
    import dfine_bench.training

    monkeypatch.setattr(
        dfine_bench.training, "train", lambda *a, **k: pytest.fail("retrained a finished run")
    )
    again = run_ablation(settings, tmp_path)
    assert again.runs == result.runs

    text = ablation_markdown(result.summary, settings)
    assert LABEL in text and "Table 2" in text and "+ FDR + GO-LSD" in text and "47.1" in text
    assert "**Decision**" in text and "AP90" in text
