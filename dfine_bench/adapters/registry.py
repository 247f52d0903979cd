"""The model registry and the ``create_model`` factory (in the manner of timm).

Built-in families register themselves when their module is imported; third-party
packages add theirs through the ``dfine_bench.adapters`` entry-point group, whose
targets are called once (or simply imported, if they are modules) to register models::

    [project.entry-points."dfine_bench.adapters"]
    my_detector = "my_pkg.adapter:register"

Names may carry a timm-style release tag: ``create_model("dfine_s.obj2coco")`` builds
``dfine_s`` with the weights of its ``obj2coco`` release (``ModelSpec.releases``).

Reading specs is cheap: ``list_models`` / ``get_spec`` use the generated index of the built-in
specs (``_model_index.py``, checked against the family modules' sources) and import no torch;
the family modules themselves are imported only when a model is built, or when the index is out
of date.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dfine_bench.adapters.model_index import builtin_specs
from dfine_bench.adapters.spec import ModelSpec, WeightsRequest, split_tag
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.utils.registry import BUILTIN, Registry

if TYPE_CHECKING:
    from dfine_bench.adapters.base import AdapterFactory, DetectorAdapter

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dfine_bench.adapters"
RANDOM_INIT = "random-init"

#: Modules of the built-in families; imported on first build so ``import dfine_bench`` stays cheap.
_BUILTIN_MODULES = (
    "dfine_bench.adapters.dfine",
    "dfine_bench.adapters.fixture",
    "dfine_bench.adapters.rtdetr",
    "dfine_bench.adapters.detr_family",
    "dfine_bench.adapters.yolo",
    "dfine_bench.adapters.fdr_variants",
)


@dataclass(frozen=True)
class RegisteredModel:
    spec: ModelSpec
    factory: AdapterFactory | None  # None: known from the index, family module not imported yet
    origin: str  # "builtin" or the entry point's name


#: the family modules are imported by ``_load_builtins`` only (torch): ``REGISTRY.load`` loads plug-ins
#: an entry known from the index has no factory yet: its family module's registration completes it
REGISTRY: Registry[RegisteredModel] = Registry("model", (ENTRY_POINT_GROUP,), identity=lambda e: e.factory)
_INDEXED: set[str] = set()  # names whose spec (and parameter count) came from the model index
_state = {"specs": False, "builtins": False}  # index read / family modules imported


def register_model(spec: ModelSpec, factory: AdapterFactory, *, origin: str | None = None) -> None:
    """Add a model. ``factory(spec, weights=..., num_classes=..., **options)`` builds its adapter."""
    where = REGISTRY.origin_for(getattr(factory, "__module__", None), origin)
    old = REGISTRY.entries.get(spec.name)
    if old is not None and old.factory is None and spec.num_parameters is None:
        # the index measured this model's parameter count: keep it (the family module need not)
        spec = _with_count(spec, old.spec.num_parameters)
    REGISTRY.register(spec.name, RegisteredModel(spec=spec, factory=factory, origin=where), origin=where)


def _with_count(spec: ModelSpec, count: int | None) -> ModelSpec:
    return replace(spec, num_parameters=count) if count is not None else spec


def _load_builtins() -> None:
    """Import the built-in family modules (torch, transformers): their real factories register."""
    if not _state["builtins"]:
        _state["builtins"] = True
        REGISTRY.load_builtins(_BUILTIN_MODULES)


def _ensure_specs() -> None:
    """Every spec known: built-ins from the index when it is current (no torch), else imported;
    then the plug-ins (after the built-ins, so that none takes a built-in's name)."""
    if not _state["specs"]:
        _state["specs"] = True

        specs = None if _state["builtins"] else builtin_specs(_BUILTIN_MODULES)
        if specs is None:
            _load_builtins()
        else:
            for spec in specs:
                if spec.name not in REGISTRY.entries:
                    REGISTRY.register(spec.name, RegisteredModel(spec=spec, factory=None, origin=BUILTIN))
                    _INDEXED.add(spec.name)
    REGISTRY.load()  # the plug-ins, once (the built-in modules are imported by ``_load_builtins``)


def _ensure_loaded() -> None:
    """Every model buildable: the built-in family modules imported, plug-ins loaded.

    The index's specs come first (when it is current), so the parameter counts it measured stay
    on the specs the family modules then register without one, whichever is asked first."""
    _ensure_specs()
    _load_builtins()


def reload() -> None:
    """Discover plug-ins again (after one was put on the path)."""
    _ensure_specs()
    REGISTRY.reload()


def load_errors() -> dict[str, str]:
    """Adapter modules or plug-ins that failed to load, with the reason (shown by ``list``)."""
    _ensure_specs()
    return REGISTRY.load_errors()


def list_models(family: str | None = None) -> list[str]:
    _ensure_specs()
    names = [n for n, m in REGISTRY.entries.items() if family is None or m.spec.family == family]
    return sorted(names)


def from_index(name: str) -> bool:
    """Whether ``name``'s spec came from the model index (its count was measured, or found
    impossible, when the index was written: no need to build it again)."""
    _ensure_specs()
    return name in _INDEXED


def list_releases(name: str) -> list[str]:
    """The release-tagged names of a model (``dfine_s.coco``, ``dfine_s.obj2coco``, ...)."""
    spec = get_spec(name)
    return [f"{spec.name}.{tag}" for tag in spec.releases]


def get_registered(name: str) -> RegisteredModel:
    """The registry entry of ``name`` (a release tag is ignored here); its factory is loaded."""
    base, _ = split_tag(name)
    _ensure_specs()
    entry = REGISTRY.entries.get(base)
    if entry is not None and entry.factory is None:
        _ensure_loaded()
        entry = REGISTRY.entries.get(base)
    if entry is None or entry.factory is None:
        if base.endswith("+fdr"):  # an FDR variant of a baseline that has none: say why
            from dfine_bench.adapters.fdr_variants import variant_of

            variant_of(base[: -len("+fdr")])
        raise UnknownNameError("model", name, REGISTRY.entries)
    return entry


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name`` (``dfine_s`` or ``dfine_s.obj2coco``), without importing its family."""
    base, tag = split_tag(name)
    _ensure_specs()
    try:
        spec = REGISTRY.entries[base].spec
    except KeyError:
        if base.endswith("+fdr"):  # an FDR variant of a baseline that has none: say why
            from dfine_bench.adapters.fdr_variants import variant_of

            variant_of(base[: -len("+fdr")])
        raise UnknownNameError("model", name, REGISTRY.entries) from None
    if tag is not None and tag not in spec.releases:
        raise UnknownNameError(f"release of {base}", tag, spec.releases)
    return spec


def release_weights(name: str, weights: str | WeightsRequest | None = None) -> str | None:
    """The ``weights=`` a tagged name implies: its release's first hub id (one already in the HF
    cache preferred). None for an untagged name. A tag with other explicit weights is an error."""
    base, tag = split_tag(name)
    if tag is None:
        return None
    if isinstance(weights, WeightsRequest):
        weights = weights.label  # auto, or the hub id / file the request names
    spec = get_spec(name)
    hub_ids = [s for s in spec.releases[tag] if "/" in s]
    if weights not in (None, "auto") and weights not in spec.releases[tag]:
        raise ConfigError(
            f"model {name!r} names the {tag} release of {base}, but weights={weights!r} was given too: "
            f"use the plain name {base!r} with those weights, or drop weights"
        )
    if weights in spec.releases[tag]:
        return weights
    if not hub_ids:
        raise ConfigError(
            f"the {tag} release of {base} has no hub id (only official files: "
            f"{', '.join(spec.releases[tag])}); pass weights=<path to that file> with the model {base!r}"
        )
    from dfine_bench.adapters.weights import cached_snapshot

    return next((h for h in hub_ids if cached_snapshot(h) is not None), hub_ids[0])


def create_model(
    name: str,
    weights: str | WeightsRequest | None = None,
    num_classes: int | None = None,
    **options: Any,
) -> DetectorAdapter:
    """Build a registered model's adapter in eval mode.

    ``weights``: ``random-init`` (the default, with ``seed=``), ``auto`` (the HF cache if it
    holds the model's hub weights, else random-init), a hub id, a local ``save_pretrained``
    directory, or a checkpoint file (official D-FINE ``.pth`` or ``.safetensors``); or a
    ``WeightsRequest`` already made from the config (``adapters.weights.weights_request``). A
    release-tagged name (``dfine_s.obj2coco``) loads that release's weights instead.
    """
    entry = get_registered(name)
    assert entry.factory is not None  # get_registered loads it
    chosen = release_weights(name, weights) or weights or RANDOM_INIT
    adapter = entry.factory(entry.spec, weights=chosen, num_classes=num_classes, **options)
    return adapter.eval()


def unregister_model(name: str) -> None:
    """Remove a model (tests register temporary adapters)."""
    REGISTRY.unregister(name)


def registered_factories() -> dict[str, Callable[..., DetectorAdapter]]:
    _ensure_loaded()
    return {n: m.factory for n, m in REGISTRY.entries.items() if m.factory is not None}
