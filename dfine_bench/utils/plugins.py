"""Loading one entry-point group of plug-ins: the shared step of every registry.

Adapters, backends, evaluators and metrics each have an entry-point group; a plug-in's target is
called once (or handed to the registry, e.g. a ``MetricDef``). A broken plug-in is recorded and
logged, never fatal, unless its error type is one the registry declares fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)


def load_entry_points(
    group: str,
    kind: str,
    errors: MutableMapping[str, str],
    *,
    handle: Callable[[str, Any], bool] | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> None:
    """Load every entry point of ``group``; ``handle(name, target)`` may take a target itself
    (return True), otherwise a callable target is called. Failures land in ``errors``."""
    for ep in entry_points(group=group):
        try:
            target: Any = ep.load()
            if handle is not None and handle(ep.name, target):
                continue
            if callable(target):
                target()
        except fatal:
            raise
        except Exception as exc:  # a broken plug-in must not take the whole tool down
            errors[f"entry point {ep.name}"] = f"{type(exc).__name__}: {exc}"
            log.warning("could not load %s entry point %r (%s): %s", kind, ep.name, ep.value, exc)
