"""The inference backends a model is profiled with: one module each, found through a registry.

``resolve_backend`` checks a backend config against the registry (start-up: unknown names,
dtypes and options are one-line ``ConfigError``s); ``check_backend`` asks the backend whether
this machine can run it (``BackendUnavailable``: a suite records a skip, never a number);
``build_backend`` turns an adapter into a ``BackendRunner``. Adding a backend is one module in
this package (subclass ``BaseBackend``, call ``register_backend``) plus its
``suites/backend/<name>.yaml``; third-party ones use the ``dfine_bench.backends`` entry points.

Importing this package does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfine_bench.backends.base import (
    DTYPES,
    GRAPHS,
    Backend,
    BackendRunner,
    BackendSpec,
    BaseBackend,
    BuildContext,
    Calibration,
    Option,
)
from dfine_bench.backends.registry import (
    ENTRY_POINT_GROUP,
    backend_table,
    check_name,
    create_backend,
    get_backend,
    list_backends,
    load_errors,
    register_backend,
    resolve_backend,
    unregister_backend,
)
from dfine_bench.errors import DfineBenchError

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter

__all__ = [
    "DTYPES",
    "ENTRY_POINT_GROUP",
    "GRAPHS",
    "Backend",
    "BackendRunner",
    "BackendSpec",
    "BaseBackend",
    "BuildContext",
    "Calibration",
    "Option",
    "backend_table",
    "build_backend",
    "check_backend",
    "check_name",
    "create_backend",
    "get_backend",
    "list_backends",
    "load_errors",
    "register_backend",
    "resolve_backend",
    "supports_graph",
    "unregister_backend",
    "validate",
]


def supports_graph(backend: Any, graph: str) -> bool:
    """Whether the backend of ``backend`` (a name, config or ``BackendSpec``) builds ``graph``."""
    name = backend if isinstance(backend, str) else resolve_backend(backend).name
    return graph in get_backend(name).graphs


def validate(backend: Any, device: str) -> BackendSpec:
    """Resolve ``backend`` against the registry and reject a ``device`` that is no device at all.

    Both are ``DfineBenchError``s (bad input, not a skip); nothing about this machine is checked.
    """
    from dfine_bench.backends._torch import device_type

    spec = resolve_backend(backend)
    device_type(device)
    return spec


def check_backend(backend: Any, device: str) -> BackendSpec:
    """Resolve ``backend`` (a config or ``BackendSpec``) and check this machine can run it on ``device``.

    Unknown names are a ``ConfigError``; what cannot run here is ``BackendUnavailable``.
    """
    spec = validate(backend, device)
    get_backend(spec.name).check(spec.dtype, device, spec.options)
    return spec


def build_backend(
    adapter: DetectorAdapter,
    backend: Any,
    *,
    device: str,
    work_dir: Path,
    input_size: tuple[int, int],
    max_batch_size: int = 1,
    threads: int | None = None,
    graph: str = "model",
    calibration: Calibration | None = None,
) -> BackendRunner:
    """A ``BackendRunner`` for ``backend`` (a ``BackendConfig``, DictConfig or ``BackendSpec``) on ``device``.

    Moves the adapter's model to ``device`` in fp32 first: it is the reference the backend's
    outputs are checked against (fp16/bf16 backends run on copies). The runner's ``info`` holds
    the backend's ``describe()`` facts (runtime versions) for the record. ``graph`` is one of
    ``GRAPHS`` the backend lists in ``graphs`` (``supports_graph``). ``calibration``: the data a
    quantizing precision needs (``profiling.precision.calibration_for``).
    """
    from dfine_bench.backends._torch import prepare_adapter

    spec = check_backend(backend, device)
    impl = get_backend(spec.name)
    if graph not in impl.graphs:
        raise DfineBenchError(
            f"the {spec.name} backend cannot build the {graph} graph (it builds {impl.graphs})"
        )
    prepare_adapter(adapter, device)
    ctx = BuildContext(
        device=device,
        work_dir=Path(work_dir),
        input_size=(int(input_size[0]), int(input_size[1])),
        max_batch_size=max(1, int(max_batch_size)),
        threads=threads,
        graph=graph,
        calibration=calibration,
    )
    runner = impl.build(adapter, spec, ctx)
    runner.info = {**impl.describe(), **runner.info}
    return runner
