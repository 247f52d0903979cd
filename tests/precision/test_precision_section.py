"""The deployment-fidelity table: ΔAP against eager fp32, size, latency, diagnosis and the fix's AP."""

from __future__ import annotations

from pathlib import Path

from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting.precision_section import (
    precision_cells,
    precision_frame,
    precision_markdown,
    precision_plots,
)
from tests.reporting.reporting_helpers import record


def _records() -> list[ResultRecord]:
    out = [
        record("evaluation", "fx", {"AP": 84.0, "AP50": 95.0, "AP75": 88.0}, generated=True),
        record("latency", "fx", {"latency_median": 100.0, "output_max_abs_diff": 0.0},
               details={"backend_info": {"artifact_mb": 15.2}}),
        record("evaluation", "fx", {"AP": 30.0}, generated=True, dtype="fp16",
               details={"backend_info": {"artifact_mb": 7.6, "nonfinite_images": 9}}),
        record("latency", "fx", {"latency_median": 150.0, "output_max_abs_diff": 5.0}, dtype="fp16"),
        record("evaluation", "fx", {"AP": 85.0}, generated=True, dtype="fp16", key="+keep_fp32"),
        record("precision_diagnosis", "fx", {}, dtype="fp16", details={
            "diagnosed": True, "triggers": ["ΔAP -54.00 < -1"], "graph": "torch modules", "images": 6,
            "summary": "first non-finite output at decoder.layers.0.encoder_attn",
            "culprit": {"name": "decoder.layers.0.encoder_attn"},
            "fix": {"keep_fp32": ["decoder.layers.*.encoder_attn"], "AP": 85.0, "restored": True},
        }),
        record("evaluation", "fx", {"AP": 60.0}, generated=True, backend="onnxruntime", dtype="int8",
               details={"backend_info": {"artifact_mb": 5.4, "onnx_exporter": "torchscript", "onnx_opset": 17,
                                         "quantizer": "onnxruntime.quantization 1.x", "method": "MinMax",
                                         "calibration": {"images": 16, "seed": 1000}}}),
    ]  # fmt: skip
    fix = out[4]
    fix.record_id = fix.record_id.removesuffix("-+keep_fp32") + "+keep_fp32"
    fix.setup.extra["keep_fp32"] = ["decoder.layers.*.encoder_attn"]
    return out


def test_each_cell_has_its_delta_size_latency_and_diagnosis(tmp_path: Path) -> None:
    cells = {c.label: c for c in precision_cells(_records())}
    assert set(cells) == {"eager fp32", "eager fp16", "eager fp16+keep_fp32", "onnxruntime int8"}
    fp16 = cells["eager fp16"]
    assert (fp16.delta, fp16.megabytes, fp16.latency_ms, fp16.max_diff) == (-54.0, 7.6, 150.0, 5.0)
    assert fp16.nonfinite_images == 9
    assert cells["eager fp16+keep_fp32"].delta == 1.0 and cells["eager fp16+keep_fp32"].latency_ms is None
    assert cells["onnxruntime int8"].delta == -24.0
    assert "calibration: 16 generated images, seed 1000; MinMax" in cells["onnxruntime int8"].export
    frame = precision_frame(list(cells.values()))
    row = frame[frame["cell"] == "eager fp16"].iloc[0]
    assert "keep_fp32 -> AP 85.00 (restores it)" in row["diagnosis"]
    assert "(9 img non-finite)" in row["AP"]
    text = "\n".join(precision_markdown(_records()))
    assert "first non-finite output at decoder.layers.0.encoder_attn" in text
    (plot,) = precision_plots(_records(), tmp_path)  # the cells with an AP and a latency
    assert plot.png.is_file() and plot.kind == "ap_vs_latency_precision"


def test_no_section_without_a_reduced_precision_cell() -> None:
    only_fp32 = [r for r in _records() if r.setup.dtype == "fp32"]
    assert precision_cells(only_fp32) == [] and precision_markdown(only_fp32) == []
