"""Paired ΔAP in `dfine-bench compare` and the report's accuracy tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reporting_helpers import record

from dfine_bench.cli import main
from dfine_bench.errors import ConfigError, DatasetError
from dfine_bench.records import ResultRecord, store
from dfine_bench.reporting.significance import mark_accuracy_tables, significance_table
from dfine_bench.reporting.tables import build_comparison

B = 200


def _evaluation(
    name: str, ap: float, backend: str = "eager", shift: float = 0.0, images: str = "i"
) -> ResultRecord:
    """An evaluation record with bootstrap replicates as the coco evaluator writes them: the same
    resampling for every record (one noise draw), moved by ``shift``."""
    values = ap + shift + np.random.default_rng(0).normal(0, 0.5, B)
    rec = record("evaluation", name, {"AP": ap + shift, "AP50": 60.0, "AP75": 40.0}, backend=backend)
    rec.details["bootstrap"] = {
        "replicates": B,
        "seed": 0,
        "confidence": 0.95,
        "images": 5000,
        "image_ids_sha256": images * 64,
        "weights_sha256": images * 64,
        "ci": {"AP": [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]},
        "values": {"AP": list(values), "AP50": [60.0] * B, "AP75": [40.0] * B},
    }
    return rec


def _records() -> list[ResultRecord]:
    return [
        _evaluation("dfine_s", 48.0),
        _evaluation("dfine_s", 48.0, backend="onnxruntime"),  # the same matching: identical replicates
        _evaluation("rtdetr_r18", 46.0, shift=0.0),
        _evaluation("dfine_n", 42.0, images="j"),  # another subset of the images
    ]


def test_rows_against_the_default_reference() -> None:
    table = significance_table(_records())
    assert table is not None
    verdicts = dict(zip(table.frame["row"], table.frame["verdict"]))
    assert verdicts["dfine_s/eager"] == "reference"
    assert verdicts["dfine_s/onnxruntime"] == "no difference"
    assert verdicts["rtdetr_r18/eager"] == "lower"  # 2 AP below with a spread of 0 in the difference
    assert verdicts["dfine_n/eager"] == "reference"  # its own images: its own reference
    onnx = next(r for r in table.rows if r.label == "dfine_s/onnxruntime")
    assert onnx.diffs["AP"].identical and onnx.diffs["AP"].p_value == 1.0


def test_an_explicit_reference_names_what_cannot_pair() -> None:
    table = significance_table(_records(), reference="rtdetr_r18")
    assert table is not None
    verdicts = dict(zip(table.frame["row"], table.frame["verdict"]))
    assert verdicts["rtdetr_r18/eager"] == "reference" and verdicts["dfine_s/eager"] == "higher"
    assert verdicts["dfine_n/eager"].startswith("not paired: different image sets: 5000 images")
    with pytest.raises(ConfigError, match=r"--reference yolo: no evaluation record matches .* dfine_s/eager"):
        significance_table(_records(), reference="yolo")
    with pytest.raises(
        DatasetError, match=r"--reference dfine_n: no evaluation pairs with it; different image s"
    ):
        significance_table(_records()[2:], reference="dfine_n")  # rtdetr_r18 is on other images


def test_accuracy_tables_mark_significant_differences() -> None:
    cmp = build_comparison(_records())
    mark_accuracy_tables(cmp, significance_table(cmp.records))
    eager = next(t for t in cmp.tables if t.kind == "accuracy" and "onnxruntime" not in t.title)
    marks = dict(zip(eager.frame["model"], eager.frame["ΔAP vs ref"]))
    assert marks["dfine_s"] == "reference" and marks["rtdetr_r18"] == "-2.00 *"
    assert any("* = its 95% interval excludes 0" in n for n in eager.notes)
    onnx = next(t for t in cmp.tables if t.kind == "accuracy" and "onnxruntime" in t.title)
    assert list(onnx.frame["ΔAP vs ref"]) == ["+0.00"]  # no mark: not significant


def _write_run(root: Path, records: list[ResultRecord]) -> None:
    run = store.RunStore(root / "results" / records[0].run_id)
    run.write_meta({"run_id": records[0].run_id, "started_at": "2026-11-24T10:00:00+00:00"})
    for r in records:
        run.write_record(r)


def test_compare_shows_the_paired_table_and_refuses_an_unknown_reference(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_run(cli_env, _records())
    assert main(["compare", "--no-claims", "--reference", "dfine_s/onnxruntime", "--markdown", "c.md"]) == 0
    out = capsys.readouterr().out
    assert "== paired AP differences (bootstrap over images) ==" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("dfine_s/eager"))
    assert "dfine_s/onnxruntime" in row and "no difference" in row and "1.000" in row
    assert "## paired AP differences" in (cli_env / "c.md").read_text()
    assert main(["compare", "--no-claims", "--reference", "dfine_x"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "--reference dfine_x" in err[0]


def test_records_from_before_the_intervals_leave_the_tables_alone() -> None:
    old = [record("evaluation", m, {"AP": ap}) for m, ap in (("dfine_s", 48.0), ("rtdetr_r18", 46.0))]
    cmp = build_comparison(old)
    table = significance_table(cmp.records)
    mark_accuracy_tables(cmp, table)
    assert (
        table is not None
        and table.rows[1].problem is not None
        and "has no AP bootstrap" in table.rows[1].problem
    )
    assert all("AP 95% CI" not in t.frame.columns for t in cmp.tables)
