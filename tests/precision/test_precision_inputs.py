"""Reduced precision's bad input is refused at start-up, one line each; precisions are backend properties."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dfine_bench.backends import backend_table, get_backend, resolve_backend
from dfine_bench.config.settings import DatasetSettings
from dfine_bench.data.generated import GeneratedParams, generate_dataset
from dfine_bench.errors import ConfigError
from dfine_bench.profiling.precision import check_precision_inputs


def test_each_backend_declares_its_precisions_and_list_backends_shows_them() -> None:
    assert get_backend("eager").precisions == ("fp32", "fp16", "bf16")
    assert get_backend("onnxruntime").precisions == ("fp32", "fp16", "int8")
    assert get_backend("openvino").precisions == ("fp32", "fp16", "bf16", "int8")
    row = next(r for r in backend_table() if r["backend"] == "onnxruntime")
    assert "cpu: fp32, fp16, int8" in row["devices: dtypes"]


def test_a_precision_the_backend_cannot_run_is_one_line_naming_those_it_can() -> None:
    spec = resolve_backend({"name": "eager", "dtype": "int8"})
    with pytest.raises(ConfigError) as err:
        check_precision_inputs([("suite.backends[1]", spec)], models=[], dataset=None)
    message = str(err.value)
    assert "\n" not in message
    assert "suite.backends[1].dtype=int8" in message
    assert "runs fp32, fp16, bf16" in message


def _image_hashes(seed: int, tmp: Path) -> set[str]:
    params = GeneratedParams(num_images=4, image_size=(64, 96), seed=seed)
    images, _ = generate_dataset(tmp / f"seed{seed}", params)
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in images.glob("*.png")}


def test_calibration_split_is_disjoint_from_the_evaluation_split_and_an_overlap_is_refused(
    tmp_path: Path,
) -> None:
    evaluation = DatasetSettings(kind="generated", seed=0)
    ok = resolve_backend({"name": "onnxruntime", "dtype": "int8"})  # default calibration_seed 1000
    check_precision_inputs([("backend", ok)], models=[], dataset=evaluation)
    # what the check stands on: the generator is a function of its seed
    assert not _image_hashes(0, tmp_path) & _image_hashes(1000, tmp_path / "b")
    assert _image_hashes(0, tmp_path) == _image_hashes(0, tmp_path / "c")

    same = resolve_backend({"name": "openvino", "dtype": "int8", "options": {"calibration_seed": 0}})
    with pytest.raises(ConfigError) as err:
        check_precision_inputs([("suite.backends[3]", same)], models=[], dataset=evaluation)
    assert "\n" not in str(err.value)
    assert "suite.backends[3].options.calibration_seed=0" in str(err.value)
    # a COCO evaluation set shares no image with the generated calibration split
    check_precision_inputs([("backend", same)], models=[], dataset=DatasetSettings(kind="coco"))


def test_keep_fp32_patterns_that_match_no_module_are_refused() -> None:
    good = resolve_backend(
        {
            "name": "eager",
            "dtype": "fp16",
            "options": {"keep_fp32": ["inner.model.decoder.layers.*.encoder_attn"]},
        }
    )
    check_precision_inputs([("backend", good)], models=["dfine_fixture"], dataset=None)
    bad = resolve_backend(
        {"name": "eager", "dtype": "fp16", "options": {"keep_fp32": ["decoder.no_such_layer"]}}
    )
    with pytest.raises(ConfigError) as err:
        check_precision_inputs([("backend", bad)], models=["dfine_fixture"], dataset=None)
    assert "\n" not in str(err.value)
    assert "'decoder.no_such_layer' matches no module of dfine_fixture" in str(err.value)
