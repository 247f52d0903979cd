"""One registry mechanism for every pluggable part: adapters, backends, evaluators and metrics.

A ``Registry[T]`` maps names to entries of one kind. It finds them in two places, the first time
anyone asks (``load``): the built-in modules (imported; each registers what it defines) and the
plug-ins of its entry-point group(s) (``dfine_bench.utils.plugins``: contained, failures kept in
``load_errors``). ``reload`` discovers them again.

Every entry has an origin: ``builtin`` (defined in a ``dfine_bench`` module or by the caller)
or ``entry point <name>`` (registered while that plug-in loaded). A name is one thing: the same
origin registering an equal entry again (a module imported twice) is a no-op, anything else is a
``RegistryClash`` naming both. A plug-in never replaces a built-in: when it comes first, the
built-in takes its name back when it registers, and the plug-in's load error says so.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.utils.plugins import current_origin, load_entry_points

log = logging.getLogger(__name__)

T = TypeVar("T")
BUILTIN = "builtin"


class RegistryClash(ConfigError, ValueError):
    """Two entries of one kind under one name (a plug-in reusing a built-in's name ...)."""


def qualified_name(obj: Any) -> str:
    """``module.Qualname`` of a function or class, or of an object's class (clash messages)."""
    target = obj if callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _named(obj: Any) -> str:
    return "not loaded yet" if obj is None else qualified_name(obj)


def _equal(old: Any, new: Any) -> bool:
    return bool(old is new or old == new)


class Registry(Generic[T]):
    """Name -> entry for one kind of component (see the module docstring).

    ``builtins``: the built-in modules, or a function returning them (called at load time);
    ``groups``: entry-point groups whose targets are called; ``import_groups``: groups whose
    targets' modules are only imported (e.g. metrics defined in an evaluator plug-in's module);
    ``identity(entry)``: the class or function an entry stands for (a backend object, a factory):
    the same one registering again (its module imported twice) is no clash, and a clash names it
    (an identity of None is a placeholder, e.g. a model known from the index before its module is
    imported, that its origin's registration completes); without it, equal entries are the same
    and ``describe(entry)`` names one;
    ``handle(name, target)``: a plug-in target the registry takes itself.
    """

    def __init__(
        self,
        kind: str,
        groups: Sequence[str],
        *,
        builtins: Sequence[str] | Callable[[], Iterable[str]] = (),
        import_groups: Sequence[str] = (),
        identity: Callable[[T], Any] | None = None,
        describe: Callable[[T], str] = qualified_name,
        handle: Callable[[str, Any], bool] | None = None,
    ) -> None:
        self.kind = kind
        self.groups = tuple(groups)
        self.import_groups = tuple(import_groups)
        self._builtins = builtins
        self._identity = identity
        self._describe = describe if identity is None else (lambda e: _named(identity(e)))
        self._handle = handle
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._loaded = False

    # -- registering ---------------------------------------------------------------------------
    @staticmethod
    def origin_for(module: str | None = None, origin: str | None = None) -> str:
        """The origin of an entry defined in ``module``: ``origin`` if given, ``builtin`` for a
        ``dfine_bench`` module, else the plug-in being loaded (or ``builtin`` outside a load)."""
        if origin:
            return origin
        if module is not None and (module == "dfine_bench" or module.startswith("dfine_bench.")):
            return BUILTIN
        return current_origin() or BUILTIN

    def register(self, name: str, entry: T, *, origin: str = BUILTIN) -> T:
        """Add ``entry`` under ``name``; returns the entry the registry holds for it."""
        old = self._entries.get(name)
        if old is not None:
            old_origin = self._origins[name]
            if old_origin == origin and self.same(old, entry):
                self._entries[name] = entry  # the same thing again (a module imported twice)
                return entry
            if old_origin == BUILTIN or origin != BUILTIN:
                raise RegistryClash(
                    f"{self.kind} {name!r} is already registered by {old_origin} ({self._describe(old)}); "
                    f"the one from {origin} ({self._describe(entry)}) is refused: rename it"
                )
            # a plug-in loaded before the built-ins took a built-in's name: the built-in wins
            self._errors[old_origin] = (
                f"RegistryClash: {self.kind} {name!r} is built in ({self._describe(entry)}); the one from "
                f"{old_origin} ({self._describe(old)}) is refused: rename it"
            )
            log.warning("%s", self._errors[old_origin])
        self._entries[name] = entry
        self._origins[name] = origin
        return entry

    def same(self, old: T, new: T) -> bool:
        """Whether ``new`` is ``old`` registered again (``identity``, else equality)."""
        if self._identity is None:
            return _equal(old, new)
        was = self._identity(old)
        return was is None or qualified_name(was) == qualified_name(self._identity(new))

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests register temporary entries)."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)

    # -- discovery -----------------------------------------------------------------------------
    def load(self) -> None:
        """Import the built-in modules and load the plug-ins, once."""
        if self._loaded:
            return
        self._loaded = True
        self.load_builtins()
        self.load_plugins()

    def load_builtins(self, modules: Iterable[str] | None = None) -> None:
        """Import built-in modules; one that fails is a load error (one that does not exist is skipped)."""
        if modules is None:
            modules = self._builtins() if callable(self._builtins) else self._builtins
        for module in modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # an optional dependency of the module: say so
                    self._errors[module] = f"{type(exc).__name__}: {exc}"
                    log.debug("%s module %s not loaded: %s", self.kind, module, exc)
            except Exception as exc:  # a broken module is reported by `list`, not fatal
                self._errors[module] = f"{type(exc).__name__}: {exc}"
                log.warning("%s module %s not loaded: %s", self.kind, module, exc)

    def load_plugins(self) -> None:
        for group in self.groups:
            load_entry_points(group, self.kind, self._errors, handle=self._handle)
        for group in self.import_groups:
            load_entry_points(group, self.kind, self._errors, call=False)

    def reload(self) -> None:
        """Discover again (after a plug-in was put on the path); load errors start afresh."""
        self._loaded = False
        self._errors.clear()
        self.load()

    def load_errors(self) -> dict[str, str]:
        """Modules or plug-ins that failed to load (or were refused), with the reason."""
        self.load()
        return dict(self._errors)

    # -- reading -------------------------------------------------------------------------------
    @property
    def entries(self) -> Mapping[str, T]:
        """Every entry in registration order, read-only and live (does not trigger loading)."""
        return MappingProxyType(self._entries)

    def find(self, name: str) -> T | None:
        self.load()
        return self._entries.get(name)

    def get(self, name: str) -> T:
        """The entry ``name``; an ``UnknownNameError`` (exit 2) with close matches otherwise."""
        self.load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def origin(self, name: str) -> str:
        self.load()
        return self._origins[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Names matching the wildcard ``pattern``, sorted."""
        self.load()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def values(self) -> Iterator[T]:
        """Every entry, in registration order."""
        self.load()
        return iter(list(self._entries.values()))

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries
