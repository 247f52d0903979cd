"""A failed optional import, reported by its cause and its fix in one line.

transformers imports its model classes lazily and wraps any failure in "Could not import module
'DFineForObjectDetection'", hiding the real error: typically a third package that transformers
imports when present (``torchvision`` built for another torch, say). ``explain_import_error``
walks the exception chain to the root, names the package whose import raised it, and says how
to fix it; ``DependencyError`` carries that line to the CLI (exit 2).
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path
from types import TracebackType

from dfine_bench.errors import DependencyError

__all__ = ["DependencyError", "broken_package", "explain_import_error", "root_cause"]


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of the ``raise ... from`` / "during handling" chain."""
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def _package_of(filename: str) -> str | None:
    """Top-level package a source file belongs to, from the ``sys.path`` entry that holds it."""
    path = Path(filename)
    best: tuple[int, str] | None = None
    for entry in sys.path:
        if not entry:
            continue
        try:
            rel = path.relative_to(Path(entry).resolve())
        except ValueError:
            try:
                rel = path.relative_to(Path(entry))
            except ValueError:
                continue
        if len(rel.parts) < 2 and not rel.suffix:
            continue
        top = rel.parts[0].removesuffix(".py")
        depth = len(Path(entry).parts)
        if best is None or depth > best[0]:  # the most specific entry wins (site-packages under a prefix)
            best = (depth, top)
    return best[1] if best else None


def _frames(tb: TracebackType | None) -> list[str]:
    files = []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return files


def broken_package(exc: BaseException) -> str | None:
    """The package whose own code raised the root error (``torchvision``), if it is not ours or stdlib."""
    root = root_cause(exc)
    if isinstance(root, ModuleNotFoundError) and root.name:
        return root.name.split(".")[0]
    packages = []
    for filename in reversed(_frames(root.__traceback__)):  # innermost first
        if filename.startswith("<"):
            continue  # frozen importlib frames
        package = _package_of(filename)
        if package and package not in sys.stdlib_module_names:
            packages.append(package)
    # torch raising on behalf of the package that called it (torchvision's operator registrations
    # against another torch build) is that package's fault, not torch's
    return next((p for p in packages if p not in ("torch", "dfine_bench")), packages[0] if packages else None)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _fix(package: str | None, importing: str) -> str:
    if package is None:
        return f"reinstall {importing.split('.')[0]} so that its dependencies import"
    import_root = importing.split(".")[0]
    torch_version = _version("torch") or "the installed one"
    if package == "torchvision":
        return (
            f"pip uninstall torchvision (dfine-bench does not need it), or install the torchvision build "
            f"made for torch {torch_version}"
        )
    if package == import_root:
        return f"reinstall {package} (pip install --force-reinstall {package})"
    return (
        f"reinstall {package} to match torch {torch_version}, or pip uninstall {package} "
        f"if nothing else needs it ({import_root} only uses it when present)"
    )


def explain_import_error(importing: str, exc: BaseException) -> str:
    """One line: what failed to import, the underlying exception, the package at fault and the fix."""
    root = root_cause(exc)
    package = broken_package(exc)
    named = re.search(r"module '([\w.]+)'", str(exc))  # transformers' wrapper names the object it wanted
    what = f"{importing}.{named.group(1)}" if named and "." not in named.group(1) else importing
    cause = " ".join(f"{type(root).__name__}: {root}".split())  # one line, whatever the message held
    at = ""
    if package is not None:
        version = _version(package)
        at = f" (raised while importing {package}{' ' + version if version else ''})"
    return f"cannot import {what}: {cause}{at}; fix: {_fix(package, importing)}"
