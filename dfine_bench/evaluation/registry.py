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

import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.evaluation.evaluator import Evaluator, EvaluatorContext
from dfine_bench.records.metrics import EVALUATOR_GROUP
from dfine_bench.utils.registry import Registry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = EVALUATOR_GROUP  # the metric catalogue imports these plug-ins' modules too
_BUILTIN_MODULES = ("dfine_bench.evaluation.coco_evaluator", "dfine_bench.evaluation.error_analysis")

EvaluatorFactory = Callable[[EvaluatorContext], Evaluator]


@dataclass(frozen=True)
class RegisteredEvaluator:
    name: str
    factory: EvaluatorFactory
    task: str
    key: Callable[[EvaluationSettings], str]  # the record key under these settings
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


REGISTRY: Registry[RegisteredEvaluator] = Registry(
    "evaluator", (ENTRY_POINT_GROUP,), builtins=_BUILTIN_MODULES, identity=lambda e: e.factory
)
#: the registry's own operations under the names callers use (tests register temporary entries)
unregister_evaluator = REGISTRY.unregister
reload = REGISTRY.reload  # discover again, after a plug-in was put on the path
load_errors = REGISTRY.load_errors  # modules or plug-ins that failed to load, and why (``list``)


def register_evaluator(
    name: str,
    factory: EvaluatorFactory,
    *,
    task: str,
    key: Callable[[EvaluationSettings], str] | None = None,
    description: str = "",
    origin: str | None = None,
    requires: Sequence[str] = (),
    install: str = "",
) -> None:
    """Add an evaluator: ``factory(context)`` builds it; its records have ``task`` and ``key(cfg)``.

    ``task`` may be a new one: its records get a comparison table from the metrics registered
    with that task (``records.metrics``), with no change elsewhere."""
    where = REGISTRY.origin_for(getattr(factory, "__module__", None), origin)
    entry = RegisteredEvaluator(
        name=name,
        factory=factory,
        task=task,
        key=key or (lambda _cfg: name),
        description=description,
        origin=where,
        requires=tuple(requires),
        install=install,
    )
    REGISTRY.register(name, entry, origin=where)


def list_evaluators(pattern: str = "*") -> list[str]:
    """Registered evaluator names matching the wildcard ``pattern``."""
    return REGISTRY.names(pattern)


def get_registered(name: str) -> RegisteredEvaluator:
    return REGISTRY.get(name)


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
