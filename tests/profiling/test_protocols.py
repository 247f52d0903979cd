"""The paper's protocol preset and the deviation sentences every latency record carries."""

from __future__ import annotations

from dfine_bench.profiling.protocols import PAPER_T4, deviations_from_paper, on_reference_device


def test_paper_setup_on_a_t4_has_no_deviations() -> None:
    paper = ("Tesla T4", "tensorrt", "fp16", 1, (640, 640), "model+postprocess", "dataset")
    assert deviations_from_paper(*paper, graph="deploy") == []
    assert PAPER_T4.batch_size == 1 and PAPER_T4.input_size == (640, 640)
    # the paper's engine is the deploy graph: the model with its top-k postprocessor inside
    assert (PAPER_T4.backend, PAPER_T4.dtype, PAPER_T4.timed) == ("tensorrt", "fp16", "model+postprocess")


def test_the_postprocessor_outside_the_engine_is_a_deviation() -> None:
    setup = ("Tesla T4", "tensorrt", "fp16", 1, (640, 640))
    (in_python,) = deviations_from_paper(*setup, "model+postprocess", "dataset", graph="model")
    assert in_python.code == "timed" and "in Python after the backend" in in_python.text
    (model_only,) = deviations_from_paper(*setup, "model", "dataset")
    assert model_only.text == "timed model, not the deploy graph (model + top-k postprocessor)"


def test_other_gpus_are_never_called_t4() -> None:
    assert on_reference_device("NVIDIA T4")
    assert on_reference_device("Tesla T4")
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA RTX T400", "T40 accelerator", "Intel Xeon", None):
        assert not on_reference_device(name)
    devs = deviations_from_paper(
        "NVIDIA H100 80GB HBM3", "tensorrt", "fp16", 1, (640, 640), "model+postprocess", "dataset"
    )
    assert devs == ["ran on NVIDIA H100 80GB HBM3, not an NVIDIA T4"]


def test_every_difference_is_listed() -> None:
    devs = deviations_from_paper("AMD EPYC 7B13", "onnxruntime", "fp32", 4, (320, 320), "end-to-end", "fixed")
    text = " | ".join(d.text for d in devs)
    assert [d.code for d in devs] == ["device", "backend", "batch_size", "input_size", "timed", "input_kind"]
    assert "ran on AMD EPYC 7B13, not an NVIDIA T4" in devs
    assert "onnxruntime fp32, not TensorRT FP16" in devs
    assert "batch size 4, not 1" in devs
    assert "input 320x320, not 640x640" in devs
    assert "end-to-end" in text
    assert "fixed random input, not COCO images" in devs
    assert len(devs) == 6


def test_accuracy_and_complexity_deviations_name_each_difference() -> None:
    from dfine_bench.profiling.protocols import accuracy_deviations, complexity_deviations

    assert accuracy_deviations("val2017", 5000, False, (640, 640), 1) == []
    assert accuracy_deviations("val2017", 500, False, (640, 640)) == [
        "val2017 with 500 images, not the 5000 of COCO val2017"
    ]
    assert accuracy_deviations("generated", 24, True, (320, 320), 2) == [
        "generated stand-in dataset, not COCO val2017",
        "input 320x320, not 640x640",
        "batch size 2, not 1",
    ]
    assert complexity_deviations((640, 640)) == []
    assert complexity_deviations((320, 320)) == ["counted at 320x320, not 640x640"]
