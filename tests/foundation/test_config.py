"""The config schema: suites compose, typos fail at start-up with one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dfine_bench.config.loading import compose_config, group_options, load_settings, suites_dir, to_run_config
from dfine_bench.config.schema import RunConfig
from dfine_bench.errors import ConfigError


def test_default_suite_composes_to_the_schema() -> None:
    cfg = to_run_config(compose_config([]))
    assert isinstance(cfg, RunConfig)
    assert cfg.suite.name == "default"
    assert cfg.suite.models, "the default suite must list models"
    assert cfg.backend.name == "eager"


@pytest.mark.parametrize("suite", ["default", "paper_coco", "paper_speed", "compare_detr"])
def test_every_builtin_suite_composes(suite: str) -> None:
    cfg = to_run_config(compose_config([f"suite={suite}"]))
    assert cfg.suite.name == suite


def test_paper_speed_suite_selects_the_paper_protocol() -> None:
    cfg = to_run_config(compose_config(["suite=paper_speed"]))
    assert cfg.protocol.name == "paper_t4"
    assert cfg.backend.name == "tensorrt"
    assert cfg.backend.dtype.value == "fp16"
    assert cfg.device == "cuda"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("suite.modls=[a]", "unknown config key 'suite.modls'. Did you mean: models?"),
        ("devic=cuda", "unknown config key 'devic'. Did you mean: device?"),
        ("backend=onnx", "unknown backend 'onnx'. Did you mean: onnxruntime"),
        ("backend.name=onnx", "backend.name"),
        ("suite=paper_coc", "unknown suite 'paper_coc'. Did you mean: paper_coco"),
        ("profiling.iters=abc", "bad value for profiling.iters"),
    ],
)
def test_bad_override_is_one_line_naming_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(compose_config([override]), [override])
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_user_suite_folder_adds_a_suite(tmp_path) -> None:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "mine.yaml").write_text(
        "# @package _global_\nsuite:\n  name: mine\n  models: [dfine_n]\n"
    )
    cfg = to_run_config(compose_config(["suite=mine"], [tmp_path]))
    assert cfg.suite.models == ["dfine_n"]
    assert "mine" in group_options("suite", [tmp_path])


def test_cli_prints_one_line_error_and_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dfine_bench", "run", "profiling.warmpu=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1, proc.stderr
    assert "profiling.warmpu" in lines[0] and "warmup" in lines[0]


def test_sweep_without_multirun_is_refused() -> None:
    from dfine_bench.cli import main

    assert main(["run", "suite=default,paper_coco"]) == 2


def test_suites_ship_in_the_package_layout() -> None:
    assert (suites_dir() / "run.yaml").is_file()
    for group in ("suite", "dataset", "backend", "protocol", "weights", "evaluation", "profiling", "output"):
        assert group_options(group), group


def test_closed_stdout_pipe_is_not_a_traceback() -> None:
    """`dfine-bench list | head`: the reader going away is no error of ours."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dfine_bench", "list", "backends"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
