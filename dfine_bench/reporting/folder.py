"""Which folders a report may be written into, and which of their files it may replace or remove.

A report folder is one dfine-bench made: it holds a marker file listing the files the last
report wrote. A report goes only into a new (or empty) folder or a marked one; any other folder
is refused unless the user forces it, and even then only files the marker lists are ever removed,
so a user's own README, plots or notes are never deleted. The rules are shared with training
runs (``utils/tool_folder.py``); this module gives them the report's marker and wording.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dfine_bench.utils import tool_folder
from dfine_bench.utils.tool_folder import ToolFolderError, remove_stale

MARKER = ".dfine-bench-report"


class ReportFolderError(ToolFolderError):
    """A report folder that holds files dfine-bench did not write."""


def is_report_folder(out: Path) -> bool:
    return tool_folder.is_tool_folder(out, MARKER)


FORCE_HINT = (
    "choose a new folder, or add --force to write the report there (no file of yours is deleted, "
    "but index.html and README.md are replaced)"
)


def check_report_folder(
    out: str | Path, *, force: bool = False, option: str = "--out", fix: str = FORCE_HINT
) -> None:
    """Refuse a folder that exists with content and was not made by dfine-bench (unless ``force``)."""
    tool_folder.check_tool_folder(out, MARKER, force=force, option=option, fix=fix, error=ReportFolderError)


def written_files(out: Path) -> set[str]:
    """The files (relative paths) the marker says the last report in ``out`` wrote."""
    return tool_folder.written_files(out, MARKER)


def mark_report_folder(out: Path, files: Iterable[str]) -> None:
    """Record that dfine-bench wrote ``files`` (relative paths) into ``out``."""
    tool_folder.mark_folder(out, MARKER, files)


__all__ = [
    "MARKER",
    "ReportFolderError",
    "check_report_folder",
    "is_report_folder",
    "mark_report_folder",
    "remove_stale",
    "written_files",
]
