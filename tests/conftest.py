"""Fixtures shared by every test folder."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PLUGIN_SITE = FIXTURES / "plugin_site"


@pytest.fixture
def plugin_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Put the toy third-party adapter package on the path (this process and subprocesses).

    Its ``dfine_bench.adapters`` entry point registers ``toy_det``, ``toy_det_b``,
    ``toy_det_slow`` and ``toy_det_color``; the registry is reloaded so the entry point is discovered.
    """
    from dfine_bench.adapters import registry

    monkeypatch.syspath_prepend(str(PLUGIN_SITE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PLUGIN_SITE), os.environ.get("PYTHONPATH", "")]))
    registry.reload()
    registry._ensure_loaded()
    yield PLUGIN_SITE
    for name in ("toy_det", "toy_det_b", "toy_det_slow", "toy_det_color"):
        registry.unregister_model(name)
    sys.modules.pop("toy_detectors", None)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run CLI commands inside a temporary working directory (results/, reports/ land there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DFINE_BENCH_COCO", raising=False)
    return tmp_path


#: ``fresh_cli(site, cwd, *args)``: the result of ``dfine-bench *args`` (see the fixture)
FreshCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def fresh_cli() -> FreshCli:
    """``dfine-bench *args`` in a fresh process run in ``cwd``, with the package folder ``site`` on
    its path (so it sees plug-ins only through their entry points), one thread, offline, no COCO."""

    def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
        env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
        env.pop("DFINE_BENCH_COCO", None)
        return subprocess.run(
            [sys.executable, "-m", "dfine_bench", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=600,
        )

    return run


#: The package logger as a fresh process has it (no handler, propagating to the root logger).
_PRISTINE_LOGGER = (logging.getLogger("dfine_bench").propagate, logging.getLogger("dfine_bench").level)


@pytest.fixture(autouse=True)
def _restore_dfine_bench_logger() -> Iterator[None]:
    """In-process `run` commands (in tests and in module-scoped fixtures) attach a console handler
    to the ``dfine_bench`` logger and stop it propagating; reset it before and after every test so
    ``caplog`` always sees the package's warnings, whatever ran before."""
    logger = logging.getLogger("dfine_bench")

    def reset() -> None:
        logger.handlers[:] = [h for h in logger.handlers if not getattr(h, "_dfine_console", False)]
        logger.propagate, level = _PRISTINE_LOGGER
        logger.setLevel(level)

    reset()
    yield
    reset()
