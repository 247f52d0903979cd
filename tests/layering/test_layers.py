"""Imports point down: a lower layer never imports a higher one (CONTRIBUTING.md, "Layers").

The graph is read with ``ast`` from every ``dfine_bench/**/*.py``: module-level and deferred
(in-function) imports both count, since a deferred import is still a dependency; imports under
``if TYPE_CHECKING:`` do not (they never run). ``claims`` and ``records`` must also import
without torch or matplotlib, checked in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dfine_bench"

#: Low to high. A unit may import its own layer and the layers below; a unit is a top-level
#: folder (or module) of the package. The backends (a registry config validates names against,
#: and the export helpers they run) sit below config; profiling, which reads typed config, above it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "utils"),
    ("records", "fdr"),
    ("adapters", "backends"),
    ("config",),
    ("data",),
    ("profiling",),
    ("evaluation", "claims"),
    ("training", "execution", "reporting"),
    ("checks",),
    ("runner",),
    ("cli", "__main__"),
)
LEVEL = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """``dfine_bench.backends.onnx`` -> ``backends``; ``dfine_bench`` -> ``__init__``."""
    parts = module.split(".")[1:]
    if not parts or parts[0].startswith("__version"):
        return "__init__"
    return parts[0]


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported dfine_bench module) for every import that runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "dfine_bench":
                found += [(node.lineno, f"dfine_bench.{a.name}") for a in node.names]
            elif node.module.startswith("dfine_bench."):
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("dfine_bench.")]
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        source = unit_of(module)
        for line, target in imports_of(path):
            wanted = unit_of(target)
            if source not in LEVEL or wanted not in LEVEL:
                problems.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {source} or {wanted} has no layer"
                )
            elif LEVEL[wanted] > LEVEL[source]:
                problems.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {target} (higher)"
                )
    return problems


def test_unit_names() -> None:
    assert unit_of("dfine_bench") == "__init__"
    assert unit_of("dfine_bench.backends.onnx") == "backends"
    assert unit_of("dfine_bench.profiling.timing") == "profiling"


def test_the_walk_finds_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a records module importing the runner is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dfine_bench.cli import main\n"
        "def f():\n    from dfine_bench.runner import run_suite\n"
    )
    assert imports_of(bad) == [(5, "dfine_bench.runner.run_suite")]


def test_no_upward_imports() -> None:
    problems = upward_imports()
    assert not problems, "imports that point up the layers:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "module", ["dfine_bench.claims", "dfine_bench.records", "dfine_bench.adapters.registry"]
)
def test_lower_packages_import_without_torch_or_matplotlib(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(','.join(m for m in ('torch', 'matplotlib', 'transformers') if m in sys.modules) or 'none')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"
