"""Exceptions that the command line turns into one clear line instead of a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DfineBenchError(Exception):
    """An error caused by the user's input (a name, a file, an option) with a fix to suggest."""


class ConfigError(DfineBenchError):
    """A bad config key or value."""


class UnknownNameError(DfineBenchError, KeyError):
    """A name (model, suite, dataset, backend) that is not registered."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind, self.name = kind, name
        self.available = sorted(available)
        close = difflib.get_close_matches(name, self.available, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        shown = ", ".join(self.available) if self.available else "(none)"
        super().__init__(f"unknown {kind} {name!r}.{hint} Available: {shown}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class CheckpointError(DfineBenchError):
    """A weights file that cannot be loaded safely or does not fit the model."""


class DatasetError(DfineBenchError):
    """A dataset, annotation file or predictions file with bad content."""


class BackendUnavailable(DfineBenchError):
    """A profiling backend, dtype or device that this machine cannot run; suites record a skip."""


class DependencyError(DfineBenchError):
    """An installed package that fails to import (e.g. a torchvision built for another torch)."""
