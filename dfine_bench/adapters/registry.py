"""The model registry and the ``create_model`` factory (in the manner of timm).

Built-in families register themselves when their module is imported; third-party
packages add theirs through the ``dfine_bench.adapters`` entry-point group, whose
targets are called once (or simply imported, if they are modules) to register models::

    [project.entry-points."dfine_bench.adapters"]
    my_detector = "my_pkg.adapter:register"
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from dfine_bench.adapters.base import AdapterFactory, DetectorAdapter, ModelSpec
from dfine_bench.errors import UnknownNameError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dfine_bench.adapters"

#: Modules of the built-in families; imported on first use so ``import dfine_bench`` stays cheap.
_BUILTIN_MODULES = (
    "dfine_bench.adapters.dfine",
    "dfine_bench.adapters.rtdetr",
    "dfine_bench.adapters.detr_family",
    "dfine_bench.adapters.yolo",
)


@dataclass(frozen=True)
class RegisteredModel:
    spec: ModelSpec
    factory: AdapterFactory
    origin: str  # "builtin" or the entry point's name


_REGISTRY: dict[str, RegisteredModel] = {}
_LOAD_ERRORS: dict[str, str] = {}
_loaded = False


def register_model(spec: ModelSpec, factory: AdapterFactory, *, origin: str = "builtin") -> None:
    """Add a model. ``factory(spec, weights=..., num_classes=..., **options)`` builds its adapter."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name].factory is not factory:
        raise ValueError(f"model {spec.name!r} is already registered by {_REGISTRY[spec.name].origin}")
    _REGISTRY[spec.name] = RegisteredModel(spec=spec, factory=factory, origin=origin)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a family module not written yet or an optional dep
            if exc.name == module:
                continue
            _LOAD_ERRORS[module] = str(exc)
            log.debug("adapter module %s not loaded: %s", module, exc)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target: Any = ep.load()
            if callable(target):
                target()
        except Exception as exc:  # a broken plug-in must not take the whole tool down
            _LOAD_ERRORS[f"entry point {ep.name}"] = f"{type(exc).__name__}: {exc}"
            log.warning("could not load adapter entry point %r (%s): %s", ep.name, ep.value, exc)


def load_errors() -> dict[str, str]:
    """Adapter modules or plug-ins that failed to load, with the reason (shown by ``list``)."""
    _ensure_loaded()
    return dict(_LOAD_ERRORS)


def list_models(family: str | None = None) -> list[str]:
    _ensure_loaded()
    names = [n for n, m in _REGISTRY.items() if family is None or m.spec.family == family]
    return sorted(names)


def get_registered(name: str) -> RegisteredModel:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("model", name, _REGISTRY) from None


def get_spec(name: str) -> ModelSpec:
    return get_registered(name).spec


def create_model(
    name: str,
    weights: str = "random-init",
    num_classes: int | None = None,
    **options: Any,
) -> DetectorAdapter:
    """Build a registered model's adapter in eval mode.

    ``weights``: ``random-init`` (with ``seed=``), ``auto`` (the HF cache if it holds the
    model's hub weights, else random-init), a hub id, a local ``save_pretrained`` directory,
    or a checkpoint file (official D-FINE ``.pth`` or ``.safetensors``).
    """
    entry = get_registered(name)
    adapter = entry.factory(entry.spec, weights=weights, num_classes=num_classes, **options)
    return adapter.eval()


def unregister_model(name: str) -> None:
    """Remove a model (tests register temporary adapters)."""
    _REGISTRY.pop(name, None)


def registered_factories() -> dict[str, Callable[..., DetectorAdapter]]:
    _ensure_loaded()
    return {n: m.factory for n, m in _REGISTRY.items()}
