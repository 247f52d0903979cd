"""The ablation's statistics, a tiny end-to-end run (resumable), its command and report section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dfine_bench.training.ablation import LABEL, AblationSettings, run_ablation
from dfine_bench.training.ablation_report import ablation_markdown
from dfine_bench.training.ablation_stats import compare_arms, permutation_p, welch


def test_permutation_test_is_exact() -> None:
    # 3 vs 3 fully separated: only the observed split and its mirror are as extreme, 2 of C(6,3) = 20
    p, floor = permutation_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert p == pytest.approx(0.1) and floor == pytest.approx(0.1)
    # identical groups: every relabelling is at least as extreme
    assert permutation_p([1.0, 2.0], [2.0, 1.0])[0] == 1.0
    # one swap between the groups: 4 of 20 splits reach |diff| >= 1 ({1,2,4} and {1,2,5}... counted by hand)
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 6.0]
    pooled = a + b
    import itertools

    observed = abs(np.mean(b) - np.mean(a))
    count = sum(
        abs(np.mean([pooled[i] for i in range(6) if i not in c]) - np.mean([pooled[i] for i in c]))
        >= observed - 1e-12
        for c in itertools.combinations(range(6), 3)
    )
    assert permutation_p(a, b)[0] == pytest.approx(count / 20)


def test_welch_t_matches_its_formula() -> None:
    a, b = [10.0, 12.0, 11.0], [13.0, 15.5, 14.0]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    t, p = welch(a, b)
    assert t == pytest.approx((np.mean(b) - np.mean(a)) / math.sqrt(va + vb))
    assert 0 < p < 0.05
    assert all(math.isnan(x) for x in welch([1.0, 1.0], [1.0, 1.0]))  # no variance: undefined, not 0


def test_compare_arms_summaries_and_differences() -> None:
    summaries, comparisons = compare_arms(
        {"baseline": [1.0, 2.0, 3.0], "fdr": [2.0, 3.0, 4.0], "fdr_go_lsd": [3.0, 5.0, 4.0]}, "baseline"
    )
    assert [s.arm for s in summaries] == ["baseline", "fdr", "fdr_go_lsd"]
    assert summaries[0].mean == 2.0 and summaries[0].std == pytest.approx(1.0)
    assert [c.arm for c in comparisons] == ["fdr", "fdr_go_lsd"]
    assert comparisons[0].difference == pytest.approx(1.0) and comparisons[1].difference == pytest.approx(2.0)


def test_bad_settings_fail_before_any_work(tmp_path: Path) -> None:
    from dfine_bench.adapters.fdr_variants import FdrUnsupportedError
    from dfine_bench.errors import ConfigError

    with pytest.raises(FdrUnsupportedError, match="yolov8n"):
        run_ablation(AblationSettings(baseline="yolov8n"), tmp_path / "a")
    with pytest.raises(ConfigError, match="arms"):
        run_ablation(AblationSettings(arms=("fdr", "fdr_go_lsd")), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_tiny_ablation_runs_resumes_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = AblationSettings(
        seeds=(0, 1),
        arms=("baseline", "fdr_go_lsd"),
        steps=2,
        batch_size=2,
        warmup_steps=1,
        input_size=64,
        train_images=6,
        eval_images=4,
    )
    result = run_ablation(settings, tmp_path)
    assert [(r["arm"], r["seed"]) for r in result.runs] == [
        ("baseline", 0),
        ("fdr_go_lsd", 0),
        ("baseline", 1),
        ("fdr_go_lsd", 1),
    ]
    params = result.summary["parameters"]
    assert params["fdr_go_lsd"] > params["baseline"]  # the FDR head is the only difference
    assert all(r["AP"] is not None for r in result.runs)
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert saved["summary"]["label"] == LABEL and len(saved["runs"]) == 4
    assert {c["arm"] for c in saved["summary"]["comparisons"]} == {"fdr_go_lsd"}

    # a rerun with the same settings trains nothing
    import dfine_bench.training

    monkeypatch.setattr(
        dfine_bench.training, "train", lambda *a, **k: pytest.fail("retrained a finished run")
    )
    again = run_ablation(settings, tmp_path)
    assert again.runs == result.runs

    text = ablation_markdown(result.summary, settings)
    assert LABEL in text and "Table 2" in text and "+ FDR + GO-LSD" in text and "47.1" in text
