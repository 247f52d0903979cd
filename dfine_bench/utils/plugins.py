"""Loading one entry-point group of plug-ins: the shared step of every registry.

Adapters, backends, evaluators and metrics each have an entry-point group; a plug-in's target is
called once (or handed to the registry, e.g. a ``MetricDef``). A plug-in is contained: whatever
its import or its target raises, ``sys.exit`` included, is recorded (``errors``, shown by
``dfine-bench list``) and logged as one line, and every other command goes on.

While a plug-in loads, ``current_origin()`` names it (``entry point <name>``), so what it
registers is marked as the plug-in's, never as built-in (``dfine_bench.utils.registry``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.metadata import EntryPoint, entry_points
from typing import Any

log = logging.getLogger(__name__)

_ORIGIN: ContextVar[str | None] = ContextVar("dfine_bench_plugin_origin", default=None)


def current_origin() -> str | None:
    """``entry point <name>`` while a plug-in is being loaded, else None."""
    return _ORIGIN.get()


@contextmanager
def loading(origin: str) -> Iterator[None]:
    """Mark what is registered inside the block as coming from ``origin``."""
    token = _ORIGIN.set(origin)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def origin_of(ep: EntryPoint) -> str:
    return f"entry point {ep.name}"


def load_entry_points(
    group: str,
    kind: str,
    errors: MutableMapping[str, str],
    *,
    handle: Callable[[str, Any], bool] | None = None,
    call: bool = True,
) -> None:
    """Load every entry point of ``group``; ``handle(name, target)`` may take a target itself
    (return True), otherwise a callable target is called (``call=False``: only imported).
    Failures land in ``errors`` and are logged; none escapes."""
    for ep in entry_points(group=group):
        origin = origin_of(ep)
        try:
            with loading(origin):
                target: Any = ep.load()
                if handle is not None and handle(ep.name, target):
                    continue
                if call and callable(target):
                    target()
        # a broken plug-in must not take the whole tool down, not even one that calls sys.exit
        except (Exception, SystemExit) as exc:
            why = f"{type(exc).__name__}: {exc}"
            errors[origin] = why
            log.warning("%s plug-in %r (%s, group %s) not loaded: %s", kind, ep.name, ep.value, group, why)
