"""``dfine-bench check --claims``: a failed claim exits 1, a passed one 0, nothing comparable 2.

The toy detector's parameter count is checked against claims files written here (a claims file
may be a path); the paper's own claims name no toy model, so nothing can be compared there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gate_helpers import NO_TIMING, RunFn

from dfine_bench.cli import main

pytestmark = pytest.mark.slow


def claims_file(tmp_path: Path, params: float, first: str = "") -> Path:
    """A claims file on toy_det_color's parameter count, after the claim row ``first`` if given."""
    path = tmp_path / f"toy_{params}.yaml"
    path.write_text(
        "name: toy\ntitle: toy claims\nprotocol:\n  description: toy\nrows:\n"
        f"{first}"
        f'  - {{model: toy_det_color, source: "test", params: {params}}}\n'
    )
    return path


@pytest.fixture(scope="module")
def run_640(run_toy: RunFn) -> Path:
    """params counted at 640x640, the claims' input size."""
    return run_toy(
        "claims",
        ["toy_det_color"],
        *NO_TIMING,
        "suite.input_size=[640,640]",
        "profiling.flops_input_size=[640,640]",
    )


def check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_claim_that_holds_passes(run_640: Path, tmp_path: Path, capsys) -> None:
    code, out = check(capsys, "--claims", claims_file(tmp_path, 0.2), run_640)
    assert code == 0, out
    assert "1 pass" in out and "toy_det_color" in out


def test_claim_that_fails_exits_1(run_640: Path, tmp_path: Path, capsys) -> None:
    md = tmp_path / "claims.md"
    code, out = check(capsys, "--claims", claims_file(tmp_path, 0.5), run_640, "--markdown", md)
    assert code == 1, out
    assert "1 fail" in out
    text = md.read_text()
    assert "| fail |" in text
    name = tmp_path / "toy_0.5.yaml"
    assert f"## dfine-bench check --claims {name}: 1 fail (exit 1)" in text
    assert "--claims claims" not in text


def test_summary_counts_in_verdict_order(run_640: Path, tmp_path: Path, capsys) -> None:
    """Counts from dfine_bench.claims.verdict_counts: pass before not measured, whatever the file's order."""
    unmeasured = '  - {model: toy_det_b, source: "test", params: 1.0}\n'
    code, out = check(capsys, "--claims", claims_file(tmp_path, 0.2, first=unmeasured), run_640)
    assert code == 0, out
    assert "1 pass, 1 not measured (exit 0)" in out


def test_nothing_comparable_exits_2(run_640: Path, tmp_path: Path, capsys) -> None:
    code, out = check(capsys, "--claims", "dfine_paper", run_640)
    assert code == 2, out
    assert "nothing could be compared" in out and "not measured" in out
