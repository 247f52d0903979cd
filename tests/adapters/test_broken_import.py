"""A broken optional import names its cause and fix (issue 15, defect 13).

A ``torchvision`` built for another torch makes transformers' lazy import of every DETR class
fail with "Could not import module 'DFineForObjectDetection'". Simulated with a fake
``torchvision`` package that raises on import, first on ``sys.path`` of a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfine_bench.adapters.imports import broken_package, explain_import_error, root_cause

SCRIPT = """
from dfine_bench.adapters import create_model
from dfine_bench.errors import DfineBenchError
try:
    create_model({name!r})
except DfineBenchError as exc:
    print("ERROR", type(exc).__name__, exc)
else:
    print("BUILT")
"""


#: How a torchvision built for another torch really fails: its meta registrations call into torch,
#: and torch raises (the innermost frames are torch's own, not torchvision's).
REAL_MISMATCH = """
import torch

@torch.library.register_fake("torchvision::nms")
def _nms_meta(dets, scores, iou_threshold):
    return dets
"""


def _fake_torchvision(
    root: Path, source: str = 'raise RuntimeError("operator torchvision::nms does not exist")\n'
) -> Path:
    package = root / "torchvision"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    return root


@pytest.mark.parametrize(
    ("name", "source"), [("dfine_n", None), ("rtdetr_r18", None), ("dfine_n", REAL_MISMATCH)]
)
def test_mismatched_torchvision_is_named_with_cause_and_fix(
    tmp_path: Path, name: str, source: str | None
) -> None:
    fake = _fake_torchvision(tmp_path / "site", *([source] if source else []))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name)], env=env, capture_output=True, text=True, timeout=300
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 1, done.stdout + done.stderr
    line = lines[0]
    assert line.startswith("ERROR DependencyError cannot import transformers.")
    assert "ForObjectDetection" in line
    assert "RuntimeError: operator torchvision::nms does not exist" in line  # the underlying exception
    assert "raised while importing torchvision" in line
    assert "pip uninstall torchvision" in line  # and the fix
    assert "pip uninstall torch " not in line and "reinstall torch " not in line  # torch is not at fault


def _chained() -> ModuleNotFoundError:
    try:
        try:
            import json.decoder  # noqa: F401  (an import that works, to have real frames)

            raise RuntimeError("inner")
        except RuntimeError as inner:
            raise ModuleNotFoundError("Could not import module 'FooForObjectDetection'.") from inner
    except ModuleNotFoundError as outer:
        return outer


def test_explanation_of_a_chain_and_of_a_missing_module() -> None:
    outer = _chained()
    assert str(root_cause(outer)) == "inner"
    text = explain_import_error("transformers", outer)
    assert text.startswith("cannot import transformers.FooForObjectDetection: RuntimeError: inner")
    missing = ModuleNotFoundError("No module named 'scipy'", name="scipy")
    assert broken_package(missing) == "scipy"
    assert "reinstall scipy" in explain_import_error("transformers", missing)
