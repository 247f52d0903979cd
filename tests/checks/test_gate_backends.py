"""The gate compares AP record by record id: AP through ONNX Runtime (``evaluation.backends``) is
judged against the baseline's ONNX Runtime AP, never against eager fp32's, and the reverse."""

from __future__ import annotations

from pathlib import Path

from dfine_bench.checks.baseline import RunData, build_baseline, entries_from_records, parse_baseline
from dfine_bench.checks.gate import compare
from dfine_bench.records import DatasetInfo, ModelInfo, ResultRecord, Setup, metric
from dfine_bench.records.build import record_id

MODEL = ModelInfo(name="m", family="dfine", weights_source="fixture", weights_id="m.safetensors",
                  weights_sha256="a" * 64, random_init=False)  # fmt: skip
DATA = DatasetInfo(
    name="generated", kind="generated", generated=True, num_images=8, annotations_sha256="c" * 64
)


def evaluation(ap: float, backend: str = "eager", dtype: str = "fp32") -> ResultRecord:
    """An evaluation record as the runner writes it: eager fp32 keeps the plain key."""
    key = "faster_coco_eval" + ("" if (backend, dtype) == ("eager", "fp32") else f"-{backend}-{dtype}")
    return ResultRecord(
        run_id="r",
        record_id=record_id("evaluation", MODEL.name, key),
        task="evaluation",
        model=MODEL,
        setup=Setup(backend=backend, dtype=dtype, engine="faster_coco_eval", input_size=[320, 320]),
        environment={},
        metrics={"AP": metric("AP", ap), "images_seen": metric("images_seen", 8)},
        dataset=DATA,
    )


def run_of(records: list[ResultRecord]) -> RunData:
    return RunData(run_dir=Path("run"), meta={}, records=records, entries=entries_from_records(records))


BASELINE = parse_baseline(build_baseline(run_of([evaluation(60.0), evaluation(59.9, "onnxruntime")])))


def test_each_backend_is_gated_against_its_own_baseline_ap() -> None:
    ok = compare(BASELINE, run_of([evaluation(60.0), evaluation(59.9, "onnxruntime")]))
    assert ok.exit_code == 0, ok
    # ONNX Runtime AP drops 5 points, eager unchanged: only the ONNX Runtime record regresses
    broken = compare(BASELINE, run_of([evaluation(60.0), evaluation(54.9, "onnxruntime")]))
    assert broken.exit_code == 1
    assert [(r.record_id, r.metric) for r in broken.regressions] == [
        (record_id("evaluation", "m", "faster_coco_eval-onnxruntime-fp32"), "AP")
    ]
    # an ONNX Runtime AP equal to eager's baseline does not hide an eager drop
    eager_drop = compare(BASELINE, run_of([evaluation(55.0), evaluation(59.9, "onnxruntime")]))
    assert [r.record_id for r in eager_drop.regressions] == [record_id("evaluation", "m", "faster_coco_eval")]


def test_a_missing_backend_record_cannot_compare_and_another_dtype_is_no_stand_in() -> None:
    missing = compare(BASELINE, run_of([evaluation(60.0)]))
    assert missing.exit_code == 2
    assert any(
        "records in the baseline but not in the run" in p and "onnxruntime" in p for p in missing.problems
    )
    # an fp16 AP is its own record: neither the fp32 one's substitute nor silently gated
    other = compare(BASELINE, run_of([evaluation(60.0), evaluation(59.9, "onnxruntime", "fp16")]))
    assert other.exit_code == 2 and not other.regressions
    assert any("not in the run" in p for p in other.problems)
    assert any("not in the baseline" in p and "fp16" in p for p in other.problems)


def latency(graph: str, median: float = 10.0) -> ResultRecord:
    """A ``model+postprocess`` timing of the deploy graph, or of the model graph + Python postprocess."""
    samples = [median * (1 + 0.01 * i) for i in range(8)]
    return ResultRecord(
        run_id="r",
        record_id=record_id("latency", MODEL.name, "onnxruntime-fp32-bs1"),
        task="latency",
        model=MODEL,
        setup=Setup(
            backend="onnxruntime", timed="model+postprocess", input_size=[320, 320], extra={"graph": graph}
        ),
        environment={},
        metrics={"latency_median": metric("latency_median", median)},
        details={"samples_ms": samples},
    )


def test_a_timing_of_another_graph_cannot_be_compared() -> None:
    """Both say timed=model+postprocess, but one ran the postprocessor inside the graph."""
    base = parse_baseline(build_baseline(run_of([latency("deploy")])))
    assert compare(base, run_of([latency("deploy")])).exit_code == 0
    other = compare(base, run_of([latency("model", median=10.0)]))
    assert other.exit_code == 2
    assert any("setup.graph" in p and "deploy" in p for p in other.problems + [r.why for r in other.rows])
