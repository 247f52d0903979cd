"""The environment fingerprint: what records carry, and the gate refusing to compare timings whose
speed-relevant fingerprint fields differ (naming the field)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from profiling_toys import ToyAdapter

from dfine_bench.backends import get_backend
from dfine_bench.checks.baseline import Baseline, Entry, RunData, parse_baseline
from dfine_bench.checks.fingerprint import fingerprint_differences, speed_fields
from dfine_bench.checks.gate import compare
from dfine_bench.config.schema import BackendConfig
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.profiling import profile_model
from dfine_bench.records.environment import capture_environment, cpu_model, fingerprint

RID = "latency-m-onnxruntime-fp32-bs1"
MODEL = {"name": "m", "family": "f", "weights_source": "random-init", "random_init": True, "weights_seed": 0}
SETUP = {
    "device": "cpu",
    "device_name": "CPU X",
    "backend": "onnxruntime",
    "dtype": "fp32",
    "batch_size": 1,
    "timed": "model",
    "threads": 1,
}
SAMPLES = [float(x) for x in np.linspace(10.0, 11.0, 20)]


def _own(backend: str, info: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """What ``backend`` itself puts in a fingerprint for these options and runner facts."""
    b = get_backend(backend)
    return b.fingerprint(b.resolve_options(options), info or {})


ORT_INFO = {
    "onnx_exporter": "torchscript",
    "providers": ["CPUExecutionProvider"],
    "onnxruntime_version": "1.17.0",
    "onnx_file": "/tmp/x.onnx",
}


def _fp(**changes: Any) -> dict[str, Any]:
    fp = fingerprint(
        "cpu", backend="onnxruntime", dtype="fp32", backend_fingerprint=_own("onnxruntime", ORT_INFO)
    )
    return {**fp, **changes}


def _entry(fp: dict[str, Any] | None) -> Entry:
    return Entry(
        RID,
        "latency",
        model=dict(MODEL),
        setup=dict(SETUP),
        metrics={"latency_median": float(np.median(SAMPLES))},
        samples_ms=list(SAMPLES),
        samples_kind="samples",
        samples_n=len(SAMPLES),
        fingerprint=fp,
    )


def _check(base: Entry, new: Entry) -> Any:
    baseline = Baseline(entries={RID: base}, path=Path("b.json"))
    run = RunData(run_dir=Path("run"), meta={}, records=[], entries={RID: new})
    return compare(baseline, run)


def test_fingerprint_holds_machine_runtime_and_precision_fields() -> None:
    fp = _fp()
    assert fp["cpu_model"] == cpu_model() and fp["cpu_count"] >= 1 and fp["device_type"] == "cpu"
    assert fp["gpu_name"] is None and fp["cuda"] is None and fp["tf32_matmul"] is None  # CPU: n/a
    assert (fp["backend"], fp["precision"], fp["option.opset"], fp["onnx_exporter"]) == (
        "onnxruntime",
        "fp32",
        17,
        "torchscript",
    )
    assert fp["providers"] == ["CPUExecutionProvider"] and fp["onnxruntime_version"] == "1.17.0"
    assert "onnx_file" not in fp  # where the file lies does not change its speed
    assert {"torch", "onnxruntime", "openvino", "tensorrt", "cudnn", "sm_clock_mhz"} <= set(fp)
    # the backend's own fields are listed with it: the gate compares them knowing no backend
    assert {"option.opset", "providers", "onnx_exporter", "onnxruntime_version"} <= set(speed_fields(fp))
    # every record's environment carries the machine part
    assert capture_environment()["fingerprint"]["cpu_model"] == cpu_model()


def test_eager_has_no_onnx_fields() -> None:
    fp = fingerprint("cpu", backend="eager", dtype="fp32", backend_fingerprint=_own("eager"))
    assert "option.opset" not in fp and "onnx_exporter" not in fp
    assert "onnxruntime" not in speed_fields(fp)  # another ORT version does not change eager's speed
    assert fingerprint_differences(fp, {**fp, "onnxruntime": "0.0.1"}) == []


def test_a_plug_in_backend_contributes_its_own_fingerprint() -> None:
    """What a backend's speed depends on comes from the backend (``Backend.fingerprint``: by default
    every option), and the fingerprint lists it, so the gate needs no edit and no registry lookup:
    a record of a backend this installation does not have is still judged on its fields."""
    from dfine_bench.backends import Option, register_backend, unregister_backend
    from dfine_bench.backends.eager import EagerBackend

    class Mine(EagerBackend):
        name = "mine_fp_test"
        options = {"turbo": Option(False, "go faster", bool)}  # noqa: RUF012

    register_backend(Mine())
    try:
        fp = fingerprint(
            "cpu", backend="mine_fp_test", dtype="fp32", backend_fingerprint=_own("mine_fp_test")
        )
    finally:
        unregister_backend("mine_fp_test")
    assert fp["option.turbo"] is False and "option.turbo" in speed_fields(fp)
    assert fingerprint_differences(fp, {**fp, "option.turbo": True}) == [
        ("fingerprint.option.turbo", False, True)
    ]


def test_openvino_hint_makes_timings_not_comparable() -> None:
    """Issue 19: OpenVINO's ``hint`` (LATENCY vs THROUGHPUT) changes its speed; the gate compared a
    THROUGHPUT run against a LATENCY baseline as like for like."""

    def ov(hint: str) -> dict[str, Any]:
        own = _own("openvino", {"onnx_exporter": "torchscript", "openvino_version": "2026.4.1"}, hint=hint)
        return fingerprint("cpu", backend="openvino", dtype="fp32", backend_fingerprint=own)

    def entry(fp: dict[str, Any]) -> Entry:
        e = _entry(fp)
        e.setup = {**e.setup, "backend": "openvino"}
        return e

    assert _check(entry(ov("LATENCY")), entry(ov("LATENCY"))).exit_code == 0
    result = _check(entry(ov("LATENCY")), entry(ov("THROUGHPUT")))
    assert result.exit_code == 2, result
    (problem,) = result.problems
    assert problem.startswith("not comparable: fingerprint.option.hint is 'LATENCY' in the baseline"), problem
    assert "'THROUGHPUT' in the run" in problem
    assert not [r for r in result.rows if r.metric == "latency_median"]  # no number was compared


def test_an_old_record_without_backend_fields_uses_the_backends_declared_fields() -> None:
    old = {k: v for k, v in _fp().items() if k != "backend_fields"}
    assert "onnxruntime" in speed_fields(old)  # OnnxRuntimeBackend.fingerprint_fields
    changed = fingerprint_differences(old, {**old, "onnxruntime": "9.9"})
    assert changed == [("fingerprint.onnxruntime", old["onnxruntime"], "9.9")]


def test_gate_refuses_timings_across_differing_fingerprints_naming_the_field() -> None:
    result = _check(_entry(_fp(onnxruntime_version="1.17.0")), _entry(_fp(onnxruntime_version="1.18.0")))
    assert result.exit_code == 2, result
    assert not [r for r in result.rows if r.metric == "latency_median"]  # no number was compared
    (problem,) = result.problems
    assert problem.startswith("not comparable: fingerprint.onnxruntime_version is '1.17.0' in the baseline")
    assert "'1.18.0' in the run" in problem
    opset = _check(_entry(_fp()), _entry(_fp(**{"option.opset": 18})))
    assert opset.exit_code == 2 and "fingerprint.option.opset" in opset.problems[0]


def test_same_fingerprint_compares_and_clocks_do_not_count() -> None:
    result = _check(_entry(_fp()), _entry(_fp(sm_clock_mhz=1200)))
    assert result.exit_code == 0, result
    assert [r.metric for r in result.rows] == ["latency_median"]
    # a baseline saved before fingerprints were recorded is compared as before
    assert _check(_entry(None), _entry(_fp())).exit_code == 0


def test_baseline_files_keep_the_fingerprint() -> None:
    doc = {
        "format": "dfine-bench-baseline",
        "format_version": 1,
        "record_schema_version": 2,
        "provenance": {},
        "records": {RID: _entry(_fp()).to_dict()},
    }
    from dfine_bench.checks import baseline as b

    doc["format"], doc["format_version"] = b.BASELINE_FORMAT, b.BASELINE_FORMAT_VERSION
    loaded = parse_baseline(json.loads(json.dumps(doc)))
    assert loaded.entries[RID].fingerprint == _fp()


def test_profiled_records_carry_the_backend_fingerprint(tmp_path: Path) -> None:
    settings = replace(
        ProfileSettings(),
        warmup=1,
        iters=5,
        min_iters=5,
        complexity=False,
        batch_sizes=(1,),
        throughput_iters=2,
        threads=1,
    )
    outs = profile_model(
        ToyAdapter(), settings, BackendConfig(), device="cpu", work_dir=tmp_path, progress=False
    )
    for o in outs:
        fp = o.setup["extra"]["fingerprint"]
        assert (fp["backend"], fp["precision"], fp["cpu_model"]) == ("eager", "fp32", cpu_model()), o.task


def test_compare_names_timings_whose_fingerprints_differ() -> None:
    from dfine_bench.checks.fingerprint import incomparable_timings
    from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup

    def rec(run: str, fp: dict[str, Any]) -> ResultRecord:
        setup = Setup(device_name="CPU X", backend="onnxruntime", extra={"fingerprint": fp})
        return ResultRecord(run, RID, "latency", ModelInfo(name="m"), setup, environment={})

    same = incomparable_timings([rec("a", _fp()), rec("b", _fp())])
    assert same == []
    (line,) = incomparable_timings([rec("a", _fp()), rec("b", _fp(onnx_exporter="dynamo"))])
    assert "not comparable" in line and "fingerprint.onnx_exporter" in line and "(run b)" in line


def test_tensorrt_builder_flags_are_in_its_fingerprint() -> None:
    own = _own("tensorrt", {"builder_flags": ["FP16"], "tensorrt_version": "10.0", "engine_file": "/x"})
    assert own["builder_flags"] == ["FP16"] and own["tensorrt_version"] == "10.0" and "engine_file" not in own
    fp = fingerprint("cuda", backend="tensorrt", dtype="fp16", backend_fingerprint=own)
    assert fingerprint_differences(fp, {**fp, "builder_flags": ["FP16", "SPARSE_WEIGHTS"]}) == [
        ("fingerprint.builder_flags", ["FP16"], ["FP16", "SPARSE_WEIGHTS"])
    ]
