"""Issue 19: a plug-in backend is a ``backend`` group option without a YAML file of its own.

``suite.backends`` and ``backend=`` name options of Hydra's ``backend`` group, which were only the
YAML files under ``suites/backend/``: a backend registered through the ``dfine_bench.backends``
entry point was "unknown backend" there unless someone added a file to dfine-bench's suites. Now
every registered backend without a file is stored as an option whose options are its own defaults.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfine_bench.backends import list_backends, registry, unregister_backend
from dfine_bench.config.loading import compose_config, group_options, load_settings

PLUGIN_SITE = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_site"


@pytest.fixture
def toy_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The toy plug-in backend ``float64`` (an option ``offset``), found through its entry point."""
    monkeypatch.syspath_prepend(str(PLUGIN_SITE))
    registry.reload()
    yield "float64"
    unregister_backend("float64")
    sys.modules.pop("toy_backends", None)
    monkeypatch.undo()
    registry.reload()
    assert "float64" not in list_backends()


def _settings(*overrides: str):
    return load_settings(compose_config(list(overrides)), list(overrides), check_hardware=False)


def test_a_plugin_backend_is_a_backend_option_without_a_yaml_file(toy_backend: str) -> None:
    assert toy_backend in group_options("backend")
    assert toy_backend not in group_options("backend", files_only=True)
    s = _settings("suite.models=[dfine_n]", f"suite.backends=[eager,{toy_backend}]")
    assert [(b.name, b.dtype, dict(b.options)) for b in s.backends] == [
        ("eager", "fp32", {"keep_fp32": []}),
        (toy_backend, "fp32", {"offset": 0.0}),  # the backend's own default
    ]
    (chosen,) = _settings(f"backend={toy_backend}", "backend.options.offset=0.5").backends
    assert (chosen.name, dict(chosen.options)) == (toy_backend, {"offset": 0.5})
