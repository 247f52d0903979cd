"""Progress display for long loops: items done, rate and ETA on a terminal, silence elsewhere.

CI logs get no progress bars (``sys.stderr`` is not a terminal); they get the log lines
the caller writes at the start and end of each task instead.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


def progress_enabled(setting: str | bool | None = "auto", stream: TextIO | None = None) -> bool:
    """``auto``: only when the stream is a terminal; ``on``/``off`` force it."""
    if isinstance(setting, bool):
        return setting
    if setting in ("on", "true", "1"):
        return True
    if setting in ("off", "false", "0"):
        return False
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """``with Progress(total, "dfine_n eval") as p: p.update(batch)`` — a one-line live counter."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        unit: str = "img",
        enabled: str | bool | None = "auto",
        stream: TextIO | None = None,
        min_interval_s: float = 0.2,
        initial: int = 0,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.enabled = progress_enabled(enabled, self.stream)
        self.min_interval_s = min_interval_s
        self.done = initial
        self._initial = initial
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self.postfix = ""  # shown after the rate, e.g. the current loss

    def __enter__(self) -> Progress:
        self._start = time.perf_counter()
        self._draw(force=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._draw(force=True)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self._start
        return (self.done - self._initial) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        parts = [f"{self.desc}: {self.done}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        parts.append(f"{rate:.2f} {self.unit}/s")
        if self.total and rate > 0:
            eta = (self.total - self.done) / rate
            parts.append(f"ETA {int(eta // 60)}:{int(eta % 60):02d}")
        if self.postfix:
            parts.append(self.postfix)
        return " | ".join(parts)

    def update(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
