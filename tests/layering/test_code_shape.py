"""The house limits on code shape (CONTRIBUTING.md, "Style"): no function above cyclomatic
complexity 15 (radon's measure), and no module much over 400 lines.

A failure names each offender, so a change that grows one sees where to split it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

radon_complexity = pytest.importorskip("radon.complexity", reason="radon comes with the test extra")

PACKAGE = Path(__file__).resolve().parents[2] / "dfine_bench"
MAX_COMPLEXITY = 15
#: "about 400": a module may carry a long docstring (the design it implements) past the round number
MAX_LINES = 420


def _blocks(source: str) -> list[tuple[str, int, int]]:
    """(name, line, complexity) of every function and method in ``source`` (closures included);
    radon also lists each class, whose figure sums its methods', and is not a function's."""
    out = []
    for block in radon_complexity.cc_visit(source):
        if not hasattr(block, "closures"):  # a class
            continue
        out.append((block.fullname, block.lineno, block.complexity))
        for inner in getattr(block, "closures", []):
            out.append((f"{block.fullname}.{inner.name}", inner.lineno, inner.complexity))
    return out


def test_the_complexity_measure_sees_a_branchy_method_and_closure() -> None:
    branch = "            if x == {0}:\n                return {0}\n"
    branches = "".join(branch.format(i) for i in range(MAX_COMPLEXITY + 1))
    source = f"class A:\n    def m(self, x):\n        def inner(x):\n{branches}            return -1\n"
    source += "        return inner(x)\n"
    assert _blocks(source) == [("A.m", 2, 1), ("A.m.inner", 3, MAX_COMPLEXITY + 2)]


def test_no_function_is_too_complex() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {name}: {cc}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, line, cc in _blocks(path.read_text(encoding="utf-8"))
        if cc > MAX_COMPLEXITY
    ]
    assert not offenders, f"functions above cyclomatic complexity {MAX_COMPLEXITY}:\n" + "\n".join(offenders)


def test_no_module_is_too_long() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {n} lines"
        for path in sorted(PACKAGE.rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not offenders, f"modules over {MAX_LINES} lines (split by job):\n" + "\n".join(offenders)
