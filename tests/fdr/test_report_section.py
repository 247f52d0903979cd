"""The Table 2-style report section: baseline, variant and Δ rows from one run's records."""

from __future__ import annotations

import pytest

from dfine_bench.records.schema import DatasetInfo, Metric, ModelInfo, ResultRecord, Setup
from dfine_bench.reporting.fdr_table import table2_markdown, table2_rows


def _record(model: str, task: str, backend: str = "eager", **metrics: float) -> ResultRecord:
    return ResultRecord(
        run_id="run1",
        record_id=f"{model}-{task}-{backend}",
        task=task,
        model=ModelInfo(name=model, random_init=True),
        setup=Setup(backend=backend, batch_size=1, device_name="Test CPU"),
        environment={},
        metrics={k: Metric(v, "") for k, v in metrics.items()},
        dataset=DatasetInfo(name="generated", kind="generated", generated=True)
        if task == "evaluation"
        else None,
    )


def _records() -> list[ResultRecord]:
    out = []
    for name, params, gflops, ms in (
        ("rtdetr_r18", 20.076, 60.1, 100.0),
        ("rtdetr_r18+fdr", 20.311, 60.5, 103.0),
    ):
        out += [
            _record(name, "complexity", params=params, gflops=gflops),
            _record(name, "latency", latency_mean=ms),
            _record(name, "latency", backend="onnxruntime", latency_mean=ms / 2),
            _record(name, "evaluation", AP=0.5),
        ]
    out.append(_record("dfine_n", "complexity", params=3.7, gflops=7.1))  # no pair: not in the section
    return out


def test_rows_come_in_baseline_variant_delta_threes() -> None:
    columns, rows = table2_rows(_records())
    assert [r["model"] for r in rows] == ["rtdetr_r18", "rtdetr_r18+fdr (+ FDR & GO-LSD)", "Δ"]
    assert {"params (M)", "GFLOPs", "latency eager (ms)", "latency onnxruntime (ms)", "AP"} <= set(columns)
    delta = rows[2]
    assert delta["params (M)"] == pytest.approx(0.235)
    assert delta["latency eager (ms)"] == pytest.approx(3.0)
    assert delta["latency onnxruntime (ms)"] == pytest.approx(1.5)


def test_markdown_marks_stand_in_accuracy_and_is_absent_without_a_pair() -> None:
    text = "\n".join(table2_markdown(_records()))
    assert "Table 2 layout" in text and "| **Δ** |" in text and "(stand-in)" in text and "Test CPU" in text
    assert table2_markdown([r for r in _records() if r.model.name != "rtdetr_r18+fdr"]) == []


def test_ablate_command_rejects_a_baseline_without_fdr(capsys: pytest.CaptureFixture[str]) -> None:
    from dfine_bench.cli import main

    assert main(["ablate", "--baseline", "yolov8n", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert (
        "--baseline must be rtdetr_r18 or rtdetr_r50" in err and "'yolov8n'" in err and "Traceback" not in err
    )


def test_the_html_report_has_the_section_too() -> None:
    """The same section in index.html (it was in the markdown report only)."""
    from types import SimpleNamespace

    from dfine_bench.reporting.html_report import _table2_html

    html = _table2_html(SimpleNamespace(comparison=SimpleNamespace(records=_records())))  # type: ignore[arg-type]
    assert html is not None and html["title"].startswith("Table 2 layout") and "Test CPU" in html["intro"]
    assert "<td><strong>Δ</strong></td>" in html["html"] and "(stand-in)" in html["html"]
    assert "rtdetr_r18+fdr (+ FDR &amp; GO-LSD)" in html["html"]  # escaped like every table cell
    assert html["note"] and "dfine-bench ablate" in html["note"]
    none = SimpleNamespace(
        comparison=SimpleNamespace(records=[r for r in _records() if r.model.name != "rtdetr_r18+fdr"])
    )
    assert _table2_html(none) is None  # type: ignore[arg-type]
