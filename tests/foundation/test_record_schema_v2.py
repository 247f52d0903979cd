"""Record schema version 2 (issue 12.6): deviations as ``Deviation(code, expected, actual)`` data,
non-finite metrics kept, and version-1 records and baselines still read."""

from __future__ import annotations

import json
import math
from pathlib import Path

from dfine_bench.checks.baseline import load_baseline
from dfine_bench.profiling.protocols import accuracy_deviations, deviations_from_paper
from dfine_bench.records import SCHEMA_VERSION, load_records, metric
from dfine_bench.records.deviations import Deviation, from_legacy
from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup

ROOT = Path(__file__).resolve().parents[2]


def _record(**setup: object) -> ResultRecord:
    return ResultRecord(
        run_id="r",
        record_id="latency-m",
        task="latency",
        model=ModelInfo(name="m"),
        setup=Setup(**setup),  # type: ignore[arg-type]
        environment={},
        metrics={"latency_median": metric("latency_median", math.nan), "fps": metric("fps", 5.0)},
    )


def test_deviations_are_data_with_a_text() -> None:
    devs = deviations_from_paper(
        "AMD EPYC", "onnxruntime", "fp16", 1, (640, 640), "model+postprocess", "fixed"
    )
    assert devs == [
        Deviation("device", "T4", "AMD EPYC"),
        Deviation("backend", "TensorRT FP16", "onnxruntime FP16"),
        Deviation("input_kind", "dataset", "fixed"),
    ]
    assert [d.text for d in devs] == [
        "ran on AMD EPYC, not an NVIDIA T4",
        "onnxruntime FP16, not TensorRT FP16",
        "fixed random input, not COCO images",
    ]
    (gen,) = accuracy_deviations("generated", 24, True, None)
    assert gen.code == "dataset_generated"


def test_version_2_round_trip_keeps_codes_and_non_finite_values() -> None:
    rec = _record(
        deviations=deviations_from_paper(
            "AMD EPYC", "eager", "fp32", 2, (320, 320), "model+postprocess", "fixed"
        )
    )
    d = json.loads(json.dumps(rec.to_dict(), allow_nan=False))  # strict JSON: no NaN literal
    assert d["schema_version"] == SCHEMA_VERSION == 2
    assert d["metrics"]["latency_median"]["value"] == "nan"  # not null: a NaN is not "not measured"
    assert d["setup"]["deviations"][2] == {
        "code": "batch_size",
        "expected": "1",
        "actual": "2",
        "text": "batch size 2, not 1",
    }
    back = ResultRecord.from_dict(d)
    assert math.isnan(back.value("latency_median") or 0.0) and back.value("fps") == 5.0
    assert back.setup.deviations == rec.setup.deviations
    assert [x.code for x in back.setup.deviations] == [
        "device",
        "backend",
        "batch_size",
        "input_size",
        "input_kind",
    ]


def test_version_1_records_are_read_with_codes_recovered(tmp_path: Path) -> None:
    v1 = _record().to_dict()
    v1["schema_version"] = 1
    v1["metrics"]["latency_median"]["value"] = None  # version 1 wrote NaN as null
    v1["setup"]["deviations"] = [
        "ran on AMD EPYC 7B13, not an NVIDIA T4",
        "PyTorch eager fp32, not TensorRT FP16",
        "timed end-to-end, not the model alone",
        "fixed random input, not COCO images",
        "val2017 with 500 images, not the 5000 of COCO val2017",
        "something nobody wrote a code for",
    ]
    (tmp_path / "r" / "records").mkdir(parents=True)
    (tmp_path / "r" / "records" / "latency-m.json").write_text(json.dumps(v1))
    (rec,) = load_records([tmp_path / "r"], strict=True)
    assert rec.schema_version == 2 and rec.value("latency_median") is None
    assert [d.code for d in rec.setup.deviations] == [
        "device",
        "backend",
        "timed",
        "input_kind",
        "num_images",
        "legacy",
    ]
    assert [d.text for d in rec.setup.deviations] == v1["setup"]["deviations"]  # the same sentences
    assert rec.setup.deviations[0] == Deviation("device", "T4", "AMD EPYC 7B13")
    assert from_legacy("input 320x320, not 640x640") == Deviation("input_size", "640x640", "320x320")


def test_a_version_1_baseline_still_loads() -> None:
    # the CI baseline as committed before schema 2 (results/baselines/ci.json at b218ea0)
    baseline = load_baseline(ROOT / "tests" / "fixtures" / "baselines" / "ci_v1.json")
    assert baseline.record_schema_version == 1 and baseline.entries
