"""The one registry mechanism (``dfine_bench.utils.registry``) and plug-ins that must not harm it:
a plug-in reusing a built-in's name is refused naming both, and one whose import raises or calls
``sys.exit`` is contained (recorded, shown by ``list``, one warning line; every command works)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfine_bench.errors import UnknownNameError
from dfine_bench.utils.plugins import loading
from dfine_bench.utils.registry import BUILTIN, Registry, RegistryClash


def make_plugin(site: Path, package: str, groups: dict[str, str], source: str) -> Path:
    """A package ``package`` with ``source`` and a dist-info declaring ``groups`` (group -> target)."""
    (site / package).mkdir(parents=True, exist_ok=True)
    (site / package / "__init__.py").write_text(textwrap.dedent(source))
    dist = site / f"{package}-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "".join(f"[{group}]\n{package} = {target}\n" for group, target in groups.items())
    )
    return site


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary site folder on the path; every registry rediscovers before and after."""
    from dfine_bench.adapters import registry as models
    from dfine_bench.backends import registry as backends
    from dfine_bench.evaluation import registry as evaluators
    from dfine_bench.records import metrics

    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    before = set(sys.modules)
    yield path
    for name in set(sys.modules) - before:
        if name.startswith("evil_"):
            sys.modules.pop(name, None)
    monkeypatch.undo()
    for reg in (backends, evaluators, metrics, models):
        reg.reload()


# -- the mechanism -------------------------------------------------------------------------
def test_register_get_wildcards_and_origins() -> None:
    reg: Registry[int] = Registry("widget", ())
    reg.register("alpha", 1)
    reg.register("alpine", 2)
    reg.register("beta", 3)
    assert reg.get("alpha") == 1 and reg.find("gamma") is None
    assert reg.names("alp*") == ["alpha", "alpine"] and list(reg.values()) == [1, 2, 3]
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpah'.*Did you mean: alpha"):
        reg.get("alpah")
    reg.register("alpha", 1)  # the same again: a module imported twice
    with pytest.raises(RegistryClash, match=r"widget 'alpha' is already registered by builtin"):
        reg.register("alpha", 5)
    with loading("entry point pkg"):
        origin = Registry.origin_for("pkg.module")
        assert Registry.origin_for("dfine_bench.x") == BUILTIN  # a built-in imported by a plug-in
    assert origin == "entry point pkg"


def test_a_builtin_takes_its_name_back_from_a_plugin_loaded_first() -> None:
    reg: Registry[str] = Registry("widget", ())
    reg.register("alpha", "plug-in's", origin="entry point evil")
    reg.register("alpha", "built-in")
    assert reg.get("alpha") == "built-in" and reg.origin("alpha") == BUILTIN
    assert "entry point evil" in reg.load_errors()["entry point evil"]
    with pytest.raises(RegistryClash, match="entry point late"):
        reg.register("alpha", "another", origin="entry point late")


# -- probe D: clashes with built-ins are refused, naming both ------------------------------------
def test_plugin_backend_cannot_replace_a_builtin(site: Path) -> None:
    from dfine_bench.backends import get_backend, registry

    make_plugin(
        site,
        "evil_backend",
        {"dfine_bench.backends": "evil_backend:register"},
        """
        from dfine_bench.backends import BaseBackend, register_backend

        class OnnxRuntimeBackend(BaseBackend):
            name = "onnxruntime"

        def register():
            register_backend(OnnxRuntimeBackend())
        """,
    )
    registry.reload()
    assert type(get_backend("onnxruntime")).__module__ == "dfine_bench.backends.onnxruntime"
    why = registry.load_errors()["entry point evil_backend"]
    assert "backend 'onnxruntime' is already registered by builtin" in why
    assert "dfine_bench.backends.onnxruntime.OnnxRuntimeBackend" in why  # the built-in
    assert "evil_backend.OnnxRuntimeBackend" in why  # and the plug-in


def test_plugin_model_cannot_take_a_builtin_name(site: Path) -> None:
    from dfine_bench.adapters import registry

    make_plugin(
        site,
        "evil_model",
        {"dfine_bench.adapters": "evil_model:register"},
        """
        from dfine_bench.adapters.registry import get_spec, register_model

        def factory(spec, **kwargs):
            raise RuntimeError("not a D-FINE")

        def register():
            register_model(get_spec("dfine_n"), factory)
        """,
    )
    registry.reload()
    why = registry.load_errors()["entry point evil_model"]
    assert "model 'dfine_n' is already registered by builtin" in why and "evil_model.factory" in why
    # the built-in family still loads and builds its models
    assert registry.get_registered("dfine_n").factory.__module__.startswith("dfine_bench.adapters")
    assert "dfine_bench.adapters.dfine" not in registry.load_errors()


def test_metric_plugin_named_like_a_builtin_is_refused(site: Path) -> None:
    from dfine_bench.records import metrics

    make_plugin(
        site,
        "evil_metric",
        {"dfine_bench.metrics": "evil_metric:AP"},
        """
        from dfine_bench.records.metrics import INFORMATIONAL, MetricDef

        AP = MetricDef("AP", "ms", False, "latency", INFORMATIONAL)
        """,
    )
    metrics.reload()
    assert metrics.get_metric("AP").unit == "%" and metrics.get_metric("AP").gate == metrics.ABSOLUTE
    why = metrics.load_errors()["entry point evil_metric"]
    assert "metric 'AP' is already registered by builtin" in why and "ms, latency" in why


# -- probe D: a plug-in's import is contained ------------------------------------------------------
def _cli(*args: str, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "dfine_bench", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize("body", ["import sys\nsys.exit(3)\n", "raise RuntimeError('broken on import')\n"])
def test_a_plugin_that_exits_or_raises_on_import_is_contained(site: Path, body: str) -> None:
    make_plugin(site, "evil_exit", {"dfine_bench.backends": "evil_exit:register"}, body)
    done = _cli("list", "backends", site=site)
    assert done.returncode == 0, done.stderr
    assert "onnxruntime" in done.stdout  # the built-ins are all there
    why = "SystemExit: 3" if "exit" in body else "RuntimeError: broken on import"
    assert f"backend entry point evil_exit failed to load: {why}" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "evil_exit" in line]
    assert len(warnings) == 1 and why in warnings[0], done.stderr
    models = _cli("list", "models", "--no-params", site=site)  # another command: unaffected
    assert models.returncode == 0 and "dfine_n" in models.stdout, models.stderr
