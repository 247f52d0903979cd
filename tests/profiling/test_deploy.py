"""The paper's deploy artifact: D-FINE with its postprocessor in one ONNX graph, run in ONNX Runtime
against eager + the adapter's postprocessor; paper_t4 refused on a machine without CUDA/TensorRT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from profiling_toys import ToyAdapter

from dfine_bench.backends.export.deploy import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    check_deploy,
    deploy_unsupported,
    export_deploy_onnx,
)
from dfine_bench.config.loading import compose_config, load_settings
from dfine_bench.errors import ConfigError, DfineBenchError

pytest.importorskip("onnxruntime", reason="the deploy artifact is checked in ONNX Runtime")


@pytest.mark.slow
def test_dfine_deploy_graph_matches_eager_plus_postprocess(tmp_path: Path) -> None:
    import onnx

    from dfine_bench.adapters import create_model

    torch.set_num_threads(2)
    adapter = create_model("dfine_n", weights="random-init", input_size=[320, 320])
    assert deploy_unsupported(adapter) is None
    path = export_deploy_onnx(adapter, tmp_path / "dfine_n-deploy.onnx", input_size=(320, 320))
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(INPUT_NAMES)
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    assert any(n.op_type == "TopK" for n in graph.node)  # the postprocessor's top-k is in the graph
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (240, 360, 3), dtype=np.uint8) for _ in range(2)]  # not 320x320
    check = check_deploy(adapter, path, images)
    assert check["detections"] == 2 * 300  # top-300 per image, as the official postprocessor
    assert check["max_score_diff"] < 1e-4
    assert check["max_box_diff_px"] < 1e-2  # boxes in pixels of the 360x240 originals
    assert check["label_mismatch_fraction"] == 0.0
    assert check["timed"] == "model+postprocess"


def test_families_without_the_topk_postprocessor_are_refused(tmp_path: Path) -> None:
    toy = ToyAdapter()
    assert "own postprocessor" in (deploy_unsupported(toy) or "")
    with pytest.raises(DfineBenchError, match="no deploy artifact"):
        export_deploy_onnx(toy, tmp_path / "toy.onnx", input_size=(64, 64))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_paper_t4_is_refused_on_the_cpu_before_any_model_is_built() -> None:
    overrides = ["protocol=paper_t4", "model=dfine_n"]
    with pytest.raises(ConfigError) as info:
        load_settings(compose_config(overrides), overrides)
    text = str(info.value)
    assert text.startswith("protocol=paper_t4 needs") and "CUDA" in text and "\n" not in text


@pytest.mark.slow
def test_gpu_check_script_dry_run_composes_every_config() -> None:
    import shutil
    import subprocess

    if shutil.which("dfine-bench") is None:
        pytest.skip("the dfine-bench command is not installed (pip install -e .)")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"
    out = subprocess.run(
        ["bash", str(script), "--dry-run"], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("+ dfine-bench")]
    assert len(lines) == 6
    # the precision matrix first: CUDA eager fp16/bf16, TensorRT fp16 and int8 (issue 20)
    assert "suite=precision" in lines[0] and "eager-bf16" in lines[0] and "tensorrt-fp16" in lines[0]
    assert "TensorrtExecutionProvider" in lines[1] and "onnxruntime-int8" in lines[1]
    assert "suite=paper_speed" in lines[2] and "rtdetr_r18" in lines[2]
    assert "backend=compile" in lines[3] and "CUDAExecutionProvider" in lines[4]
    assert lines[5].startswith("+ dfine-bench report")
    assert "pip install" not in script.read_text().replace("no pip install", "")


@pytest.mark.slow
def test_profile_times_the_deploy_graph_when_the_postprocessor_is_timed(tmp_path: Path) -> None:
    """``timed=model+postprocess`` runs the paper's deploy graph in the backend (ONNX Runtime here, as
    TensorRT on a GPU), checked against eager + postprocess, its postprocessor inside forward."""
    import onnx

    from dfine_bench.adapters import create_model
    from dfine_bench.config.settings import ProfileSettings
    from dfine_bench.profiling import profile_model

    torch.set_num_threads(2)
    adapter = create_model("dfine_fixture")  # trained weights: real scores, few top-k ties
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(2)]
    settings = ProfileSettings(
        timed="model+postprocess",
        warmup=1,
        iters=4,
        min_iters=2,
        max_time_s=5.0,
        stage_iters=2,
        complexity=False,
        throughput=False,
    )
    by_backend = {}
    for backend in ("eager", "onnxruntime"):
        (lat,) = profile_model(
            adapter, settings, backend, device="cpu", work_dir=tmp_path, images=images, progress=False
        )
        assert lat.status == "ok", lat.reason
        by_backend[backend] = lat
        assert lat.setup["timed"] == "model+postprocess" and lat.setup["extra"]["graph"] == "deploy"
        assert not any(d.code == "timed" for d in lat.setup["deviations"])  # the paper's span exactly
        check = lat.details["output_check"]
        assert check["graph"] == "deploy" and check["detections"] == 2 * 300
        assert check["max_score_diff"] < 1e-4 and check["max_box_diff_px"] < 0.05
        assert check["label_mismatch_fraction"] == 0.0
        stages = lat.details["stages"]["by_stage"]
        assert stages["forward"]["status"] == "ok"
        assert stages["postprocess"]["status"] == "in forward"  # inside the graph, not a separate 0
        assert lat.details["stages"]["included_in_another"] == {"postprocess": "forward"}
    onnx_file = Path(by_backend["onnxruntime"].details["backend_info"]["onnx_file"])
    assert onnx_file.name.endswith("-deploy.onnx")
    graph = onnx.load(str(onnx_file)).graph
    assert [i.name for i in graph.input] == list(INPUT_NAMES)
    assert any(n.op_type == "TopK" for n in graph.node)


def test_a_backend_without_the_deploy_graph_times_the_postprocessor_in_python() -> None:
    from dfine_bench.adapters import create_model
    from dfine_bench.backends import BackendSpec, register_backend, unregister_backend
    from dfine_bench.backends.eager import EagerBackend
    from dfine_bench.profiling.timed_call import graph_for

    class ModelOnly(EagerBackend):
        name = "model_only_test"
        graphs = ("model",)

    adapter = create_model("dfine_n", weights="random-init", input_size=[64, 64])
    eager = BackendSpec("eager", "fp32", {})
    assert graph_for(adapter, eager, "model+postprocess") == ("deploy", None)
    assert graph_for(adapter, eager, "model") == ("model", None)
    register_backend(ModelOnly())
    try:
        graph, why = graph_for(adapter, BackendSpec("model_only_test", "fp32", {}), "model+postprocess")
    finally:
        unregister_backend("model_only_test")
    assert graph == "model" and "builds the model graph only" in (why or "")
    graph, why = graph_for(ToyAdapter(), eager, "model+postprocess")
    assert graph == "model" and "own postprocessor" in (why or "")


def test_a_deploy_graph_that_computes_something_else_is_not_timed() -> None:
    from dfine_bench.backends.export.deploy import MAX_UNMATCHED, deploy_check_failure

    good = {
        "max_score_diff": 1e-6,
        "max_box_diff_rel": 1e-6,
        "max_box_diff_px": 6e-4,
        "label_mismatch_fraction": 0.0,
    }
    assert deploy_check_failure(good, atol=1e-2) is None
    boxes = {**good, "max_box_diff_rel": 0.05, "max_box_diff_px": 32.0}  # 32 px of a 640 px image
    assert "differs from eager + postprocess by 0.05 > backend.atol=0.01" in (
        deploy_check_failure(boxes, 1e-2) or ""
    )
    ties = {**good, "label_mismatch_fraction": MAX_UNMATCHED + 0.01}
    assert "have no partner" in (deploy_check_failure(ties, 1e-2) or "")
