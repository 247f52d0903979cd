"""Which folders a report may be written into, and which of their files it may replace or remove.

A report folder is one dfine-bench made: it holds a marker file listing the files the last
report wrote. A report goes only into a new (or empty) folder or a marked one; any other folder
is refused unless the user forces it, and even then only files the marker lists are ever removed,
so a user's own README, plots or notes are never deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import dfine_bench
from dfine_bench.errors import DfineBenchError
from dfine_bench.utils.files import atomic_write_text

MARKER = ".dfine-bench-report"


class ReportFolderError(DfineBenchError):
    """A report folder that holds files dfine-bench did not write."""


def is_report_folder(out: Path) -> bool:
    return (out / MARKER).is_file()


FORCE_HINT = (
    "choose a new folder, or add --force to write the report there (no file of yours is deleted, "
    "but index.html and README.md are replaced)"
)


def check_report_folder(
    out: str | Path, *, force: bool = False, option: str = "--out", fix: str = FORCE_HINT
) -> None:
    """Refuse a folder that exists with content and was not made by dfine-bench (unless ``force``)."""
    out = Path(out)
    if force or not out.exists():
        return
    if not out.is_dir():
        raise ReportFolderError(f"{option}: {out} is a file, not a folder; choose a new folder")
    if is_report_folder(out) or not any(out.iterdir()):
        return
    raise ReportFolderError(
        f"{option}: {out} holds files dfine-bench did not write (it has no {MARKER} marker); {fix}"
    )


def written_files(out: Path) -> set[str]:
    """The files (relative paths) the marker says the last report in ``out`` wrote."""
    try:
        data = json.loads((out / MARKER).read_text(encoding="utf-8"))
        return {str(f) for f in data.get("files", []) if isinstance(f, str)}
    except (OSError, ValueError, AttributeError):
        return set()


def mark_report_folder(out: Path, files: Iterable[str]) -> None:
    """Record that dfine-bench wrote ``files`` (relative paths) into ``out``."""
    doc = {"made_by": "dfine-bench", "version": dfine_bench.__version__, "files": sorted(set(files))}
    atomic_write_text(out / MARKER, json.dumps(doc, indent=1) + "\n")


def remove_stale(out: Path, previous: set[str], keep: set[str]) -> None:
    """Remove files an earlier report wrote that this one did not: only those the marker listed."""
    for rel in sorted(previous - keep):
        path = out / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            continue  # a marker is data on disk: never let it point outside the folder
        if path.is_file():
            path.unlink(missing_ok=True)


__all__ = [
    "MARKER",
    "ReportFolderError",
    "check_report_folder",
    "is_report_folder",
    "mark_report_folder",
    "remove_stale",
    "written_files",
]
