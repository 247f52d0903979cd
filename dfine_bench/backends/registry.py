"""The backend registry: ``register_backend``, ``get_backend``, ``list_backends`` (in the manner of timm).

Built-in backends are the public modules of this package (every ``*.py`` here whose name does
not start with ``_``, other than ``base`` and ``registry``; sub-packages such as ``export`` are
not backends); each registers itself when imported,
so adding one is adding its module. Third-party packages add theirs through the
``dfine_bench.backends`` entry-point group, whose targets are called once (or simply
imported, if they are modules)::

    [project.entry-points."dfine_bench.backends"]
    my_backend = "my_pkg.backend:register"

Nothing here imports torch: ``list backends`` and config validation stay cheap.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dfine_bench.backends.base import DTYPES, Backend, BackendSpec
from dfine_bench.errors import ConfigError
from dfine_bench.utils.registry import Registry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dfine_bench.backends"
_PACKAGE = "dfine_bench.backends"
_NOT_BACKENDS = frozenset({"base", "registry"})


@dataclass(frozen=True)
class RegisteredBackend:
    backend: Backend
    origin: str  # "builtin" or the entry point's name


def builtin_modules() -> list[str]:
    """The modules of the built-in backends: this package's public modules."""
    package = importlib.import_module(_PACKAGE)
    return sorted(
        f"{_PACKAGE}.{m.name}"
        for m in pkgutil.iter_modules(package.__path__)
        if not m.ispkg and not m.name.startswith("_") and m.name not in _NOT_BACKENDS
    )


#: a backend's identity is its class (module and name): its module imported twice is no clash
REGISTRY: Registry[RegisteredBackend] = Registry(
    "backend", (ENTRY_POINT_GROUP,), builtins=builtin_modules, identity=lambda e: e.backend
)
#: the registry's own operations under the names callers use (tests register temporary entries)
unregister_backend = REGISTRY.unregister
reload = REGISTRY.reload  # discover again, after a plug-in was put on the path
load_errors = REGISTRY.load_errors  # modules or plug-ins that failed to load, and why (``list``)


def register_backend(backend: Backend, *, origin: str | None = None) -> Backend:
    """Add ``backend`` under ``backend.name`` and return it; another backend of that name is an error."""
    if not isinstance(backend, Backend):
        raise TypeError(f"{backend!r} does not implement the Backend protocol (see backends/base.py)")
    where = REGISTRY.origin_for(type(backend).__module__, origin)
    REGISTRY.register(backend.name, RegisteredBackend(backend=backend, origin=where), origin=where)
    return backend


def list_backends(pattern: str = "*", *, available: bool = False) -> list[str]:
    """Registered backend names matching the wildcard ``pattern``; only those whose packages are
    installed with ``available=True`` (the device is not checked)."""
    names = REGISTRY.names(pattern)
    if available:
        names = [n for n in names if REGISTRY.get(n).backend.missing() is None]
    return names


def get_registered(name: str) -> RegisteredBackend:
    return REGISTRY.get(name)


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``; an ``UnknownNameError`` with close matches otherwise."""
    return get_registered(name).backend


#: timm-style alias: backends are stateless objects, so "creating" one is looking it up.
create_backend = get_backend


def check_name(name: str, *, key: str = "backend.name") -> Backend:
    """``get_backend`` for config values: a one-line ``ConfigError`` naming ``key`` and the registered."""
    entry = REGISTRY.find(name)
    if entry is not None:
        return entry.backend
    names = REGISTRY.names()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    errors = REGISTRY.load_errors()
    broken = f" (not loaded: {', '.join(errors)})" if errors else ""
    raise ConfigError(
        f"{key}={name!r} is not a registered backend.{hint} Registered: {', '.join(names)}{broken}"
    )


def _field(cfg: Any, name: str, default: Any) -> Any:
    out = cfg.get(name, default) if isinstance(cfg, Mapping) else getattr(cfg, name, default)
    out = getattr(out, "value", out)  # an Enum member (a dtype) -> its value
    return default if out is None else out


def resolve_backend(cfg: Any, *, key: str = "backend") -> BackendSpec:
    """A backend config (``BackendConfig``, DictConfig, mapping, or a plain name such as
    ``"onnxruntime"``: fp32, default options) checked against the registry.

    Unknown names, dtypes and options are a one-line ``ConfigError`` naming ``<key>.<field>``;
    whether this machine can run it is ``check`` at build time (a skip, not an error).
    """
    if isinstance(cfg, BackendSpec):
        return cfg
    if isinstance(cfg, str):  # a name alone; without this it would read as a config with no fields
        cfg = {"name": cfg}
    name = str(_field(cfg, "name", "eager"))
    backend = check_name(name, key=f"{key}.name")
    dtype = str(_field(cfg, "dtype", "fp32"))
    if dtype not in DTYPES:
        raise ConfigError(f"{key}.dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    raw = _field(cfg, "options", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}.options must be a mapping of option -> value (got {raw!r})")
    options = backend.resolve_options({str(k): v for k, v in raw.items()}, key=f"{key}.options")
    atol = _field(cfg, "atol", 1e-2)
    if isinstance(atol, bool) or not isinstance(atol, int | float) or atol < 0:
        raise ConfigError(f"{key}.atol={atol!r} must be a number >= 0")
    return BackendSpec(name=name, dtype=dtype, options=options, atol=float(atol))


def _shown(value: Any) -> str:
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


def backend_table() -> list[dict[str, str]]:
    """One row per registered backend for ``list backends``: availability here and what it needs."""
    rows = []
    for name in list_backends():
        entry = REGISTRY.get(name)
        b = entry.backend
        missing = b.missing()
        rows.append(
            {
                "backend": name,
                "available here": "yes" if missing is None else f"no ({b.install or missing})",
                "devices: dtypes": "; ".join(f"{d}: {', '.join(ds)}" for d, ds in b.devices.items()),
                # deploy: the model with its postprocessor in one graph (profiling.timed=model_postprocess)
                "graphs": ", ".join(b.graphs),
                "options (default)": ", ".join(f"{k}={_shown(o.default)}" for k, o in b.options.items())
                or "-",
                "origin": entry.origin,
                "description": b.description,
            }
        )
    return rows
