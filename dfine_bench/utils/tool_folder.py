"""Folders dfine-bench writes into: only a new (or empty) one, or one it made itself.

A folder the tool made holds a marker file (``.dfine-bench-report`` for reports,
``.dfine-bench-train`` for training runs) listing the files it wrote, plus whatever the command
needs to know about the folder later (a training run's identity, for a resume). A folder that
exists with content and no marker belongs to the user: it is refused (unless forced), and even
then only files a marker lists are ever removed, so a user's own files are never deleted or
overwritten. The report and training commands share these rules (``reporting/folder.py``,
``training/session.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dfine_bench
from dfine_bench.errors import DfineBenchError
from dfine_bench.utils.files import atomic_write_text


class ToolFolderError(DfineBenchError):
    """A folder that holds files dfine-bench did not write."""


def is_tool_folder(out: Path, marker: str) -> bool:
    return (Path(out) / marker).is_file()


def check_tool_folder(
    out: str | Path,
    marker: str,
    *,
    force: bool = False,
    option: str,
    fix: str,
    error: type[ToolFolderError] = ToolFolderError,
) -> None:
    """Refuse a folder that exists with content and was not made by dfine-bench (unless ``force``).

    A dangling symbolic link or a file is refused too: writing "into" it would follow the link or
    fail half-way.
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise error(f"{option}: {out} is a symbolic link to nothing; choose a new folder")
    if force or not out.exists():
        return
    if not out.is_dir():
        raise error(f"{option}: {out} is a file, not a folder; choose a new folder")
    if is_tool_folder(out, marker) or not any(out.iterdir()):
        return
    raise error(f"{option}: {out} holds files dfine-bench did not write (it has no {marker} marker); {fix}")


def read_marker(out: Path, marker: str) -> dict[str, Any]:
    """The marker's content ({} when missing or unreadable)."""
    try:
        data = json.loads((Path(out) / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def written_files(out: Path, marker: str) -> set[str]:
    """The files (relative paths) the marker says dfine-bench last wrote into ``out``."""
    files = read_marker(out, marker).get("files", [])
    return {str(f) for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def mark_folder(out: Path, marker: str, files: Iterable[str], extra: Mapping[str, Any] | None = None) -> None:
    """Record that dfine-bench wrote (or is writing) ``files`` (relative paths) into ``out``."""
    doc = {
        "made_by": "dfine-bench",
        "version": dfine_bench.__version__,
        **dict(extra or {}),
        "files": sorted(set(files)),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out) / marker, json.dumps(doc, indent=1, default=str) + "\n")


def remove_stale(out: Path, previous: set[str], keep: set[str]) -> None:
    """Remove files an earlier command wrote that this one did not: only those the marker listed."""
    for rel in sorted(previous - keep):
        path = out / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            continue  # a marker is data on disk: never let it point outside the folder
        if path.is_file():
            path.unlink(missing_ok=True)


__all__ = [
    "ToolFolderError",
    "check_tool_folder",
    "is_tool_folder",
    "mark_folder",
    "read_marker",
    "remove_stale",
    "written_files",
]
