"""Progress display for long loops: a ``tqdm`` bar on a terminal, silence elsewhere.

CI logs get no progress bars (``sys.stderr`` is not a terminal); they get the log lines the
caller writes at the start and end of each task instead. ``Progress`` keeps the small API the
callers use (``update``, the ``postfix`` text, ``done``) so the bar library stays a detail here.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from tqdm import tqdm


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
    """``with Progress(total, "dfine_n eval") as p: p.update(batch)`` — a one-line live bar.

    ``postfix`` (e.g. ``"loss 0.412"``) is shown after the rate; ``done`` counts items so far
    (``initial`` included, for resumed loops).
    """

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
        self._postfix = ""
        self._bar: tqdm | None = None

    @property
    def postfix(self) -> str:
        return self._postfix

    @postfix.setter
    def postfix(self, text: str) -> None:
        self._postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)  # drawn with the next update

    def __enter__(self) -> Progress:
        if self.enabled:
            self._bar = tqdm(
                total=self.total or None,
                desc=self.desc,
                unit=self.unit,
                initial=self._initial,
                file=self.stream,
                mininterval=self.min_interval_s,
                dynamic_ncols=True,
                leave=True,
                # "disable=None" would let tqdm decide from the stream; our setting already did
                disable=False,
            )
            if self._postfix:
                self._bar.set_postfix_str(self._postfix, refresh=False)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
