"""Comparison tables: split by device/backend/dtype, never averaged, stand-ins labelled, filters."""

from __future__ import annotations

import doctest
import math

import pandas as pd
import pytest
from reporting_helpers import CPU, GPU, record, suite_records

from dfine_bench.errors import DfineBenchError
from dfine_bench.reporting import build_comparison, filter_records, formatting
from dfine_bench.reporting.formatting import formatted_frame, markdown_table
from dfine_bench.reporting.selection import DEVICE_TASKS
from dfine_bench.reporting.tables import NOT_MEASURED, SPEED, STAND_IN_COLUMN


def _numbers(frame: pd.DataFrame) -> list[float]:
    return [v for col in frame.columns for v in frame[col] if isinstance(v, float) and not math.isnan(v)]


def test_mixed_devices_get_separate_tables_and_are_never_averaged() -> None:
    records = [
        record("latency", "dfine_n", {"latency_median": 100.0, "fps": 10.0}, device_name=CPU),
        record("latency", "dfine_n", {"latency_median": 2.0, "fps": 500.0}, device="cuda", device_name=GPU),
        record("latency", "dfine_s", {"latency_median": 300.0, "fps": 3.3}, device_name=CPU),
    ]
    cmp = build_comparison(records)
    speed = cmp.table(SPEED)
    assert sorted(t.group.device_name for t in speed) == sorted([CPU, GPU])
    by_device = {t.group.device_name: t.frame.set_index("model") for t in speed}
    assert by_device[CPU].loc["dfine_n", "latency median (ms)"] == 100.0
    assert by_device[GPU].loc["dfine_n", "latency median (ms)"] == 2.0
    assert "dfine_s" not in by_device[GPU].index  # not measured there: no row, no borrowed number
    # the overview keeps one column block per device; no cell holds a blend of the two
    overview = cmp.overview.frame
    blocks = {c[0] for c in overview.columns if c[0]}
    assert any(CPU in b for b in blocks) and any(GPU in b for b in blocks)
    assert 51.0 not in _numbers(overview)  # mean of 100 and 2
    gpu_col = next(c for c in overview.columns if GPU in c[0] and c[1] == "latency median (ms)")
    row_s = overview[("", "model")] == "dfine_s"
    assert math.isnan(overview.loc[row_s, gpu_col].iloc[0])
    assert formatted_frame(cmp.overview).loc[row_s, gpu_col].iloc[0] == NOT_MEASURED


def test_backends_and_dtypes_are_separate_columns() -> None:
    records = [
        record("latency", "dfine_n", {"latency_median": 9.0}, device="cuda", device_name=GPU),
        record(
            "latency", "dfine_n", {"latency_median": 1.5}, device="cuda", device_name=GPU, backend="tensorrt"
        ),
        record(
            "latency",
            "dfine_n",
            {"latency_median": 1.1},
            device="cuda",
            device_name=GPU,
            backend="tensorrt",
            dtype="fp16",
        ),
    ]
    titles = [t.title for t in build_comparison(records).table(SPEED)]
    assert len(titles) == 3
    assert {f"{GPU} · eager · fp32", f"{GPU} · tensorrt · fp32", f"{GPU} · tensorrt · fp16"} == set(titles)


def test_same_model_in_two_runs_splits_rows_instead_of_averaging() -> None:
    records = [
        record("latency", "dfine_n", {"latency_median": 10.0}, run_id="run-a"),
        record("latency", "dfine_n", {"latency_median": 30.0}, run_id="run-b"),
    ]
    (table,) = build_comparison(records).table(SPEED)
    assert "run" in table.frame.columns
    assert sorted(table.frame["latency median (ms)"]) == [10.0, 30.0]
    assert set(table.frame["run"]) == {"run-a", "run-b"}


def test_random_init_and_real_weights_are_different_rows() -> None:
    records = [
        record("complexity", "dfine_n", {"params": 3.7}),
        record("complexity", "dfine_n", {"params": 3.7}, real=True, run_id="run-b"),
    ]
    (table,) = build_comparison(records).tables
    assert len(table.frame) == 2
    assert "run" not in table.frame.columns  # the weights alone tell the rows apart
    stand_in = dict(zip(table.frame["weights"], table.frame[STAND_IN_COLUMN]))
    assert stand_in["hub: org/dfine_n_coco"] == ""
    assert "random-init weights" in stand_in["random-init (seed 0)"]


def test_stand_ins_are_labelled_in_every_table() -> None:
    cmp = build_comparison(suite_records(generated=True))
    for table in [*cmp.tables, cmp.overview]:
        col = STAND_IN_COLUMN if STAND_IN_COLUMN in table.frame.columns else ("", STAND_IN_COLUMN)
        assert all("random-init weights" in v for v in table.frame[col]), table.title
    (acc,) = cmp.table("accuracy")
    assert all("generated data" in v for v in acc.frame[STAND_IN_COLUMN])
    assert "generated" in acc.title
    assert "stand-in" in markdown_table(formatted_frame(acc))
    real = build_comparison(suite_records(generated=False, real=True))
    assert all(not t.has_stand_ins for t in real.tables)


def test_failed_record_is_marked_not_filled() -> None:
    records = [
        record("latency", "dfine_n", {"latency_median": 50.0, "latency_p90": 55.0}, backend="onnxruntime"),
        record(
            "latency",
            "dfine_s",
            {"output_max_abs_diff": 0.6},
            backend="onnxruntime",
            status="failed",
            reason="outputs differ from eager",
        ),
    ]
    (table,) = build_comparison(records).tables
    row = table.frame.set_index("model").loc["dfine_s"]
    assert row["latency median (ms)"] == "failed" and row["latency p90 (ms)"] == "failed"
    assert row["max |diff| vs eager"] == pytest.approx(0.6)
    assert "CUDA peak (MiB)" not in table.frame.columns  # a status never invents columns


def test_values_come_from_exactly_one_record() -> None:
    records = suite_records()
    cmp = build_comparison(records)
    lat = {r.model.name: r.value("latency_median") for r in records if r.task == "latency"}
    (speed,) = cmp.table(SPEED)
    assert dict(zip(speed.frame["model"], speed.frame["latency median (ms)"])) == lat
    params = {r.model.name: r.value("params") for r in records if r.task == "complexity"}
    (cx,) = cmp.table("complexity")
    assert dict(zip(cx.frame["model"], cx.frame["params (M)"])) == params
    flat = cmp.flat_frame()
    assert len(flat) == 3 and any("params (M)" in c for c in flat.columns)


def test_filters() -> None:
    records = [
        *suite_records(),
        record(
            "latency", "dfine_n", {"latency_median": 2.0}, device="cuda", device_name=GPU, backend="tensorrt"
        ),
    ]
    assert {r.model.family for r in filter_records(records, family="D-FINE")} == {"dfine"}
    timed = [r for r in filter_records(records, device="H100") if r.task in DEVICE_TASKS]
    assert {r.setup.device_name for r in timed} == {GPU}
    timed = [r for r in filter_records(records, device="cuda") if r.task in DEVICE_TASKS]
    assert {r.setup.device_name for r in timed} == {GPU}
    assert {r.task for r in filter_records(records, tasks=["latency"])} == {"latency"}
    cmp = build_comparison(records, backend="tensorrt")
    assert [t.group.backend for t in cmp.table(SPEED)] == ["tensorrt"]
    with pytest.raises(DfineBenchError, match=r"no record matches device=T4.*devices: .*H100"):
        filter_records(records, device="T4")
    with pytest.raises(DfineBenchError, match="unknown task"):
        filter_records(records, tasks=["speed"])


def test_no_records_is_a_clear_error() -> None:
    with pytest.raises(DfineBenchError, match="run `dfine-bench run` first"):
        build_comparison([])


def test_device_and_backend_filters_keep_accuracy_and_complexity() -> None:
    """Evaluation and complexity records carry eager and the run's device; a speed filter keeps them."""
    onnx = [
        record("latency", name, {"latency_median": 5.0}, backend="onnxruntime")
        for name in ("dfine_n", "dfine_s", "rtdetr_r18")
    ]
    records = [*suite_records(), *onnx]
    cmp = build_comparison(records, backend="onnxruntime")
    assert {t.kind for t in cmp.tables} == {"accuracy", "complexity", SPEED}
    assert [t.group.backend for t in cmp.table(SPEED)] == ["onnxruntime"]
    (cx,) = cmp.table("complexity")
    assert sorted(cx.frame["model"]) == ["dfine_n", "dfine_s", "rtdetr_r18"]
    assert {r.task for r in cmp.records} == {"evaluation", "complexity", "latency"}
    assert {r.setup.backend for r in cmp.records if r.task in DEVICE_TASKS} == {"onnxruntime"}
    on_gpu = record("latency", "dfine_n", {"latency_median": 2.0}, device="cuda", device_name=GPU)
    gpu = [*suite_records(), on_gpu]
    cmp = build_comparison(gpu, device="cuda")
    assert {t.kind for t in cmp.tables} == {"accuracy", "complexity", SPEED}
    assert [t.group.device_name for t in cmp.table(SPEED)] == [GPU]
    # a filter no speed record matches is still an error, naming the speed records' values
    with pytest.raises(DfineBenchError, match=r"matches backend=tensorrt .*backends: eager, onnxruntime"):
        build_comparison(records, backend="tensorrt")
    with pytest.raises(DfineBenchError, match=r"no record matches backend=onnxruntime"):
        build_comparison(records, backend="onnxruntime", tasks=["complexity"])


def test_latency_notes_list_latency_deviations_only() -> None:
    """A throughput record's setup is its best batch size; that is no deviation of the batch-1 latency."""
    records = [
        record("latency", "dfine_n", {"latency_median": 10.0}),
        record("latency", "dfine_s", {"latency_median": 30.0}),
        record("throughput", "dfine_n", {"throughput": 120.0}, batch_size=4, details={"best_batch_size": 4}),
        record("throughput", "dfine_s", {"throughput": 40.0}, details={"best_batch_size": 1}),
    ]
    (table,) = build_comparison(records).table(SPEED)
    (latency_note,) = [n for n in table.notes if n.startswith("deviations from the paper's protocol")]
    assert f"ran on {CPU}, not an NVIDIA T4" in latency_note
    assert "batch size" not in latency_note
    (throughput_note,) = [n for n in table.notes if n.startswith("throughput")]
    assert "best batch size" in throughput_note and "also deviates: batch size 4, not 1" in throughput_note
    assert "NVIDIA T4" not in throughput_note  # said once, in the latency note
    # throughput alone: its own deviations, all of them, under the throughput note
    (alone,) = build_comparison(records[2:]).table(SPEED)
    assert not any(n.startswith("deviations") for n in alone.notes)
    (note,) = [n for n in alone.notes if n.startswith("throughput")]
    assert "deviates from the paper's protocol" in note and "batch size 4, not 1" in note and CPU in note


def test_claim_numbers_are_four_significant_digits_as_documented() -> None:
    results = doctest.testmod(formatting)
    assert results.attempted >= 2 and results.failed == 0
    assert "4 significant digits" in (formatting.format_claims.__doc__ or "")


def test_ap_through_another_backend_is_its_own_accuracy_block() -> None:
    """``evaluation.backends``: eager fp32 and onnxruntime AP of one model never share a column or a row."""
    ap = {"AP": 50.0, "AP50": 70.0}
    records = [
        record("evaluation", "dfine_n", ap, generated=True),
        record("evaluation", "dfine_n", {"AP": 49.9, "AP50": 69.8}, generated=True, backend="onnxruntime"),
        record("evaluation", "dfine_s", {"AP": 55.0}, generated=True),
    ]
    cmp = build_comparison(records)
    accuracy = cmp.table("accuracy")
    assert sorted((t.group.backend, t.group.dtype) for t in accuracy) == [
        ("eager", "fp32"),
        ("onnxruntime", "fp32"),
    ]
    by_backend = {t.group.backend: t for t in accuracy}
    eager, onnx = by_backend["eager"], by_backend["onnxruntime"]
    assert "onnxruntime" not in eager.title and "onnxruntime fp32" in onnx.title
    # one row per model (no run / record split needed), each AP from its own backend's record
    assert "record" not in eager.frame.columns
    assert dict(zip(eager.frame["model"], eager.frame["AP"])) == {"dfine_n": 50.0, "dfine_s": 55.0}
    assert dict(zip(onnx.frame["model"], onnx.frame["AP"])) == {"dfine_n": 49.9}
    assert "dfine_s" not in list(onnx.frame["model"])  # not measured there: no borrowed number
    assert {r.setup.backend for r in _records_of(cmp, onnx)} == {"onnxruntime"}
    assert {r.setup.backend for r in _records_of(cmp, eager)} == {"eager"}
    blocks = {c[0] for c in cmp.overview.frame.columns if c[0]}
    assert eager.title in blocks and onnx.title in blocks


def _records_of(cmp, table):  # type: ignore[no-untyped-def]
    return [r for key in table.row_keys for r in cmp.sources[(key, table.title)]]
