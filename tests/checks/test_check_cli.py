"""``dfine-bench check`` itself, without a run: a crash is exit 2, and what it prints is true."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest
import yaml

import dfine_bench.checks
import dfine_bench.records.store
from dfine_bench.checks.gate import CheckResult, Row, resolve_tolerances
from dfine_bench.checks.render import markdown_table, render_markdown, render_text
from dfine_bench.cli import check_cmd, main
from dfine_bench.records.metrics import COCO_STATS

SUITES = Path(__file__).resolve().parents[2] / "suites" / "suite"


def _crash(*args: object, **kwargs: object) -> NoReturn:
    raise ZeroDivisionError("float division by zero")


def test_a_crash_inside_check_exits_2_not_1(monkeypatch, tmp_path: Path, capsys) -> None:
    """Exit 1 means "regression": a bug in the check must not say that (the CLI's generic path would)."""
    monkeypatch.setattr(check_cmd, "load_run", _crash)
    md = tmp_path / "check.md"
    code = main(["check", "--baseline", str(tmp_path / "b.json"), str(tmp_path), "--markdown", str(md)])
    assert code == 2
    err = capsys.readouterr().err
    first, *rest = err.splitlines()
    assert "internal error: ZeroDivisionError: float division by zero" in first and "exit 2" in first
    assert "traceback follows" in first and rest[0].startswith("Traceback"), "the traceback is printed"
    text = md.read_text()
    assert "CANNOT COMPARE" in text and "ZeroDivisionError: float division by zero" in text


def _result(**tolerances: float) -> CheckResult:
    tol, sources = resolve_tolerances([("suite.tolerances", tolerances)])
    return CheckResult(tolerances=tol, tolerance_sources=sources, baseline_label="b", run_label="r")


def test_rule_line_names_each_coco_tolerance_that_differs() -> None:
    """Only AP overridden: the line must not claim AP50 ... ARl have AP's tolerance."""
    line = render_text(_result(AP=0.5)).splitlines()[-2]
    assert line.startswith("rules: AP/AR drop > 0.3 points fails (except AP > 0.5);"), line
    two = render_text(_result(AP=0.5, ARs=1.0)).splitlines()[-2]
    assert "AP/AR drop > 0.3 points fails (except AP > 0.5, ARs > 1);" in two
    same = render_text(_result(**dict.fromkeys(COCO_STATS, 0.5))).splitlines()[-2]
    assert "AP/AR drop > 0.5 points fails;" in same and "except" not in same
    assert "AP/AR drop > 0.3 points fails (except AP > 0.5)" in render_markdown(_result(AP=0.5))


def test_ci_suite_sets_every_coco_tolerance_alike() -> None:
    """suite=ci means 0.5 points for every COCO stat (random-init weights on generated data)."""
    tolerances = yaml.safe_load((SUITES / "ci.yaml").read_text())["suite"]["tolerances"]
    assert {k: tolerances.get(k) for k in COCO_STATS} == dict.fromkeys(COCO_STATS, 0.5)
    resolve_tolerances([("ci.yaml", tolerances)])  # every key is one the gate checks


def test_markdown_table_escapes_like_the_report() -> None:
    """render.py uses reporting's markdown_table: pipes and backslashes in a cell are escaped."""
    table = markdown_table(["why"], [["a | b"], ["C:\\runs"]])
    assert table.splitlines() == ["| why |", "|---|", "| a \\| b |", "| C:\\\\runs |"]
    result = _result()
    result.rows.append(Row("r", "AP", 1.0, 2.0, "ok", "x|y"))
    assert "| x\\|y |" in render_markdown(result)


def test_newest_run_is_the_shared_one(tmp_path: Path) -> None:
    assert dfine_bench.checks.newest_run is dfine_bench.records.store.newest_run
    with pytest.raises(dfine_bench.checks.BaselineError.__mro__[1]):  # DfineBenchError: exit 2
        dfine_bench.checks.load_run(None, tmp_path)
