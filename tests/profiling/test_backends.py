"""The backend registry: built-ins found by module, wildcard listing, clear errors, plug-ins, options.

Everything here is torch-free metadata or the toy adapter, so it runs in seconds.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from profiling_toys import ToyAdapter

from dfine_bench.backends import (
    BackendSpec,
    BaseBackend,
    build_backend,
    check_backend,
    get_backend,
    list_backends,
    register_backend,
    registry,
    resolve_backend,
    unregister_backend,
)
from dfine_bench.errors import BackendUnavailable, ConfigError, UnknownNameError
from dfine_bench.profiling.output_check import compare_outputs

PLUGIN_SITE = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_site"
BUILTIN = {"eager", "compile", "onnxruntime", "tensorrt", "openvino"}


@pytest.fixture
def toy_backend_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The toy third-party backend package on the path; the registry rediscovers entry points."""
    monkeypatch.syspath_prepend(str(PLUGIN_SITE))
    registry.reload()
    yield PLUGIN_SITE
    unregister_backend("float64")
    sys.modules.pop("toy_backends", None)
    monkeypatch.undo()  # the site off the path first, so the reload does not find the plug-in again
    registry.reload()
    assert "float64" not in list_backends()


def test_builtin_backends_are_the_package_modules() -> None:
    assert set(list_backends()) >= BUILTIN
    for name in BUILTIN:
        assert get_backend(name).name == name
        assert registry.get_registered(name).origin == "builtin"
    modules = {m.rsplit(".", 1)[1] for m in registry.builtin_modules()}
    assert modules == set(list_backends()) & modules  # every public module registered its backend
    assert not {"base", "registry"} & modules and not any(m.startswith("_") for m in modules)


def test_wildcard_listing() -> None:
    assert list_backends("onnx*") == ["onnxruntime"]
    assert list_backends("*r*t") == ["tensorrt"]
    assert list_backends("nothing*") == []
    names = list_backends()
    assert names == sorted(names)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown backend 'onxruntime'\. Did you mean: onnxruntime"):
        get_backend("onxruntime")
    with pytest.raises(ConfigError) as info:
        resolve_backend({"name": "openvno"}, key="suite.backends[1]")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("suite.backends[1].name='openvno' is not a registered backend")
    assert "Did you mean: openvino?" in message
    assert all(n in message for n in BUILTIN)  # the registered names are listed


def test_a_plain_name_is_that_backend_not_eager() -> None:
    """``profile_model(..., "onnxruntime")`` once profiled eager: a string read as a config with no fields."""
    assert resolve_backend("onnxruntime") == resolve_backend({"name": "onnxruntime"})
    assert resolve_backend("onnxruntime").name == "onnxruntime"
    with pytest.raises(ConfigError, match=r"backend\.name='openvno' is not a registered backend"):
        resolve_backend("openvno")


def test_options_are_checked_and_defaults_filled() -> None:
    spec = resolve_backend({"name": "onnxruntime", "options": {"providers": ["CPUExecutionProvider"]}})
    assert spec == BackendSpec(
        name="onnxruntime",
        dtype="fp32",
        options={
            "opset": 17,
            "exporters": ["torchscript", "dynamo"],
            "providers": ["CPUExecutionProvider"],
            "calibration_images": 16,  # int8 (issue 20)
            "calibration_seed": 1000,
            "calibration_method": "MinMax",
            "keep_fp32": [],
        },
    )
    assert resolve_backend({"name": "compile", "options": {"mode": None}}).options == {"mode": "default"}
    cases = [
        ({"name": "onnxruntime", "options": {"provider": []}}, "backend.options.provider is not an option"),
        ({"name": "onnxruntime", "options": {"provider": []}}, "Did you mean: providers?"),
        ({"name": "eager", "options": {"mode": "x"}}, "eager backend.* Its options: keep_fp32"),
        (
            {"name": "compile", "options": {"mode": "fastest"}},
            "backend.options.mode: 'fastest' is not one of",
        ),
        ({"name": "openvino", "options": {"opset": "17"}}, "backend.options.opset='17': expected int"),
        ({"name": "tensorrt", "options": {"exporters": "dynamo"}}, "expected a list"),
        ({"name": "eager", "dtype": "fp8"}, "backend.dtype='fp8' is not one of fp32, fp16, bf16, int8"),
        ({"name": "eager", "atol": -1}, "backend.atol=-1 must be a number >= 0"),
    ]
    for cfg, expected in cases:
        with pytest.raises(ConfigError, match=expected):
            resolve_backend(cfg)


def test_a_config_dataclass_and_a_dictconfig_resolve_alike() -> None:
    from omegaconf import OmegaConf

    from dfine_bench.config.schema import BackendConfig, DType

    cfg = BackendConfig(name="openvino", dtype=DType.fp32, options={"hint": "THROUGHPUT"}, atol=0.05)
    a = resolve_backend(cfg)
    b = resolve_backend(OmegaConf.structured(cfg))
    assert a == b and a.options["hint"] == "THROUGHPUT" and a.atol == 0.05 and a.key == "openvino-fp32"


def test_availability_is_checked_per_device_and_dtype() -> None:
    with pytest.raises(BackendUnavailable, match="NVIDIA GPU"):
        check_backend({"name": "tensorrt", "dtype": "fp16"}, "cpu")
    # eager runs fp16/bf16 on the CPU too (issue 20); int8 is onnxruntime's and openvino's on the CPU only
    with pytest.raises(
        BackendUnavailable,
        match=r"onnxruntime does not support bf16; on the CPU use backend\.dtype=fp32\|fp16\|int8",
    ):
        check_backend({"name": "onnxruntime", "dtype": "bf16"}, "cpu")
    check_backend({"name": "eager", "dtype": "fp16"}, "cpu")
    with pytest.raises(BackendUnavailable, match="openvino backend runs on cpu only"):
        check_backend({"name": "openvino"}, "cuda")


def test_a_missing_package_says_what_to_install() -> None:
    class NeedsNothingThere(BaseBackend):
        name = "needs_pkg"
        packages = ("dfine_bench_no_such_package",)
        install = "pip install dfine-bench-no-such-package"

    register_backend(NeedsNothingThere())
    try:
        assert "needs_pkg" not in list_backends(available=True)
        with pytest.raises(BackendUnavailable, match="pip install dfine-bench-no-such-package"):
            check_backend({"name": "needs_pkg"}, "cpu")
        row = next(r for r in registry.backend_table() if r["backend"] == "needs_pkg")
        assert row["available here"] == "no (pip install dfine-bench-no-such-package)"
        assert row["graphs"] == "model"  # a backend builds the model graph unless it says more
        eager = next(r for r in registry.backend_table() if r["backend"] == "eager")
        assert eager["graphs"] == "model, deploy"
    finally:
        unregister_backend("needs_pkg")


def test_a_second_backend_of_the_same_name_is_refused() -> None:
    class OtherEager(BaseBackend):
        name = "eager"

    with pytest.raises(ValueError, match="backend 'eager' is already registered by builtin"):
        register_backend(OtherEager())
    assert type(get_backend("eager")).__name__ == "EagerBackend"


def test_entry_point_backend_plugs_in_and_builds(toy_backend_site: Path, tmp_path: Path) -> None:
    assert "float64" in list_backends()
    assert registry.get_registered("float64").origin == "toy_backends"
    adapter = ToyAdapter()
    runner = build_backend(adapter, {"name": "float64"}, device="cpu", work_dir=tmp_path, input_size=(64, 64))
    assert runner.info == {"toy_backend_version": "0.1", "toy": True}  # describe() + the runner's own
    x = adapter.example_input(2)
    diff = compare_outputs(tuple(adapter.export_module()(x)), runner(x))
    assert 0 <= diff.matched_max_abs_diff < 1e-5


def test_broken_plugins_are_reported_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "broken_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[dfine_bench.backends]\nbroken = broken_backend:register\n")
    (tmp_path / "broken_backend.py").write_text("def register():\n    raise RuntimeError('no luck')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload()
    try:
        assert registry.load_errors() == {"entry point broken": "RuntimeError: no luck"}
        assert set(list_backends()) >= BUILTIN  # the rest still loads
    finally:
        sys.modules.pop("broken_backend", None)
        monkeypatch.undo()
        registry.reload()
    assert registry.load_errors() == {}


def test_registry_metadata_imports_no_torch() -> None:
    """`list backends` and config checks read the registry; neither may pay for importing torch."""
    code = textwrap.dedent(
        """
        import sys
        from dfine_bench.backends import backend_table, resolve_backend
        resolve_backend({"name": "onnxruntime", "options": {"opset": 18}})
        print(sorted(row["backend"] for row in backend_table()))
        print("torch" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.returncode == 0, out.stderr
    names, torch_loaded = out.stdout.strip().splitlines()
    assert set(eval(names)) >= BUILTIN
    assert torch_loaded == "False", out.stderr


def test_list_backends_command_prints_the_registry(toy_backend_site: Path, capsys) -> None:
    from dfine_bench.cli import main

    assert main(["list", "backends"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert set(list_backends()) <= set(lines)  # one row per registered backend, the plug-in's too
    assert "toy_backends" in lines["float64"] and "offset" in lines["float64"]
    assert "workspace_gb" in lines["tensorrt"] and "hint" in lines["openvino"]
