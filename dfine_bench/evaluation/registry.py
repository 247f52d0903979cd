"""The evaluator registry: ``register_evaluator``, ``create_evaluator``, ``list_evaluators`` (timm-style).

Built-in evaluators register when their module is imported (``_BUILTIN_MODULES``); third-party
packages add theirs through the ``dfine_bench.evaluators`` entry-point group, whose targets are
called once (or simply imported, if they are modules)::

    [project.entry-points."dfine_bench.evaluators"]
    my_eval = "my_pkg.evaluators:register"

An entry records the evaluator's record ``task`` and how its record key follows from the
settings, so the records an evaluation will write are known before anything runs.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dfine_bench.config.schema import EvaluationConfig
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.evaluation.evaluator import Evaluator, EvaluatorContext
from dfine_bench.utils.plugins import load_entry_points

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dfine_bench.evaluators"
_BUILTIN_MODULES = ("dfine_bench.evaluation.coco_evaluator", "dfine_bench.evaluation.error_analysis")

EvaluatorFactory = Callable[[EvaluatorContext], Evaluator]


@dataclass(frozen=True)
class RegisteredEvaluator:
    name: str
    factory: EvaluatorFactory
    task: str
    key: Callable[[EvaluationConfig], str]  # the record key under these settings
    description: str
    origin: str  # "builtin" or the entry point's name
    requires: tuple[str, ...] = ()  # importable packages it needs (checked at start-up, not imported)
    install: str = ""  # what to install when one is missing

    def missing(self) -> str | None:
        absent = [p for p in self.requires if importlib.util.find_spec(p) is None]
        if not absent:
            return None
        hint = f": {self.install}" if self.install else ""
        return f"evaluator {self.name!r} needs the {', '.join(absent)} package{hint}"


_REGISTRY: dict[str, RegisteredEvaluator] = {}
_LOAD_ERRORS: dict[str, str] = {}
_loaded = False


def register_evaluator(
    name: str,
    factory: EvaluatorFactory,
    *,
    task: str,
    key: Callable[[EvaluationConfig], str] | None = None,
    description: str = "",
    origin: str = "builtin",
    requires: Sequence[str] = (),
    install: str = "",
) -> None:
    """Add an evaluator: ``factory(context)`` builds it; its records have ``task`` and ``key(cfg)``."""
    old = _REGISTRY.get(name)
    if old is not None and old.factory is not factory:
        raise ValueError(f"evaluator {name!r} is already registered by {old.origin}")
    _REGISTRY[name] = RegisteredEvaluator(
        name=name,
        factory=factory,
        task=task,
        key=key or (lambda _cfg: name),
        description=description,
        origin=origin,
        requires=tuple(requires),
        install=install,
    )


def unregister_evaluator(name: str) -> None:
    """Remove an evaluator (tests register temporary ones)."""
    _REGISTRY.pop(name, None)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    load_entry_points(ENTRY_POINT_GROUP, "evaluator", _LOAD_ERRORS)


def reload() -> None:
    """Discover evaluators again (after a plug-in was put on the path)."""
    global _loaded
    _loaded = False
    _ensure_loaded()


def load_errors() -> dict[str, str]:
    _ensure_loaded()
    return dict(_LOAD_ERRORS)


def list_evaluators(pattern: str = "*") -> list[str]:
    """Registered evaluator names matching the wildcard ``pattern``."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_registered(name: str) -> RegisteredEvaluator:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("evaluator", name, _REGISTRY) from None


def create_evaluator(name: str, context: EvaluatorContext) -> Evaluator:
    """Build the registered evaluator ``name`` for ``context``."""
    return get_registered(name).factory(context)


def check_evaluators(
    names: Sequence[str], *, key: str = "evaluation.evaluators"
) -> list[RegisteredEvaluator]:
    """The registry entries of ``names``; a one-line ``ConfigError`` naming ``key`` for an unknown or
    repeated name, or an empty list (checked at start-up, before any model is built)."""
    if not names:
        raise ConfigError(f"{key} is empty: list at least one evaluator ({', '.join(list_evaluators())})")
    seen: set[str] = set()
    out = []
    for name in names:
        if name in seen:
            raise ConfigError(f"{key} lists {name!r} twice")
        seen.add(name)
        try:
            entry = get_registered(str(name))
        except UnknownNameError as exc:
            raise ConfigError(f"{key}: {exc}") from None
        reason = entry.missing()
        if reason:
            raise ConfigError(f"{key}: {reason}")
        out.append(entry)
    return out
