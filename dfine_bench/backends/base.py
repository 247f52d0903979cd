"""The ``Backend`` contract: what every inference backend declares and does.

A backend is one object in the registry (``registry.py``). It says, without importing torch
or its own runtime, what it is (``name``, ``description``), what it needs (``packages``, the
``install`` hint, ``devices`` and the dtypes each device supports) and which options it takes
(``options``: name -> ``Option``, set as ``backend.options.<name>`` in the config). At run time it
checks this machine (``check``: ``BackendUnavailable`` with a one-line reason), exports the
model if it runs a file (``export``), builds a ``BackendRunner`` (``build``) and says what goes
in the record (``describe``: versions, providers).

``BaseBackend`` implements the common parts; a backend module subclasses it, fills in the
class attributes and ``build``, and calls ``register_backend`` at import.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from dfine_bench.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:  # torch stays unimported until a backend is built
    import torch

    from dfine_bench.adapters.base import DetectorAdapter

#: Every precision name a backend may support (which ones it does is per backend and device:
#: ``Backend.devices``; ``int8`` means weights and activations quantized with calibration data).
DTYPES = ("fp32", "fp16", "bf16", "int8")
#: The graphs a backend can run: ``model`` (pixel values -> the adapter's raw output tuple) and
#: ``deploy`` (images, original sizes -> labels, boxes, scores: the model with its top-k
#: postprocessor inside, as the paper's deployment export; ``backends/export/deploy.py``).
GRAPHS = ("model", "deploy")


@dataclass(frozen=True)
class Option:
    """One backend option: its default, what it is for, and the values it accepts."""

    default: Any
    help: str
    type: type = str  # str, int, float, bool or list
    choices: tuple[Any, ...] = ()  # allowed values (of each item, for a list)

    def coerce(self, key: str, value: Any) -> Any:
        """``value`` as this option's type, or a ``ConfigError`` naming ``key``."""
        if value is None:
            return list(self.default) if isinstance(self.default, list) else self.default
        out = _as_type(self.type, key, value)
        bad = [v for v in (out if self.type is list else [out]) if self.choices and v not in self.choices]
        if bad:
            allowed = ", ".join(map(str, self.choices))
            raise ConfigError(f"{key}: {bad[0]!r} is not one of {allowed}")
        return out


def _as_type(kind: type, key: str, value: Any) -> Any:
    """``value`` as an option of type ``kind`` (an int is a float; a bool is no number), or a
    ``ConfigError`` naming ``key``."""
    if kind is list:
        # a ListConfig is no Sequence, but iterates like one
        if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{key}={value!r}: expected a list, e.g. {key}=[a,b]")
        return [str(v) for v in value]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is float and number:
        return float(value)
    if kind is int and number and isinstance(value, int):
        return int(value)
    if (kind is bool and isinstance(value, bool)) or (kind is str and isinstance(value, str)):
        return value
    raise ConfigError(f"{key}={value!r}: expected {kind.__name__}")


@dataclass(frozen=True)
class Calibration:
    """Calibration data for a quantizing backend: preprocessed pixel batches from a split disjoint
    from the evaluation images (``profiling/precision.py`` makes it), and what the record says about it."""

    batches: tuple[torch.Tensor, ...]
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildContext:
    """Where and for what a runner is built (the same for every backend of one profile task)."""

    device: str
    work_dir: Path
    input_size: tuple[int, int]
    max_batch_size: int = 1
    threads: int | None = None  # CPU threads the run uses; None: the runtime's default
    graph: str = "model"  # one of GRAPHS
    calibration: Calibration | None = None  # for the precisions in the backend's ``calibrated``


@dataclass
class BackendRunner:
    """One ready-to-time backend. ``info`` (versions, providers, engine path ...) goes in records.

    ``prepare`` moves the graph's inputs (the ``model`` graph: pixel values; the ``deploy``
    graph: images and original sizes) into the backend's native input, outside the timed region;
    ``call`` runs the graph on it, ``to_torch`` turns the native outputs back into torch tensors
    in the graph's output order (the adapter's ``output_names``, or labels/boxes/scores), floating
    ones as fp32 and integer ones unchanged.
    """

    name: str
    dtype: str
    device: str
    prepare: Callable[..., Any]
    call: Callable[[Any], Any]
    to_torch: Callable[[Any], tuple[torch.Tensor, ...]]
    info: dict[str, Any] = field(default_factory=dict)
    graph: str = "model"

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.to_torch(self.call(self.prepare(*inputs)))


@dataclass(frozen=True)
class BackendSpec:
    """A backend config resolved against the registry: a known name, dtype and checked options."""

    name: str
    dtype: str
    options: Mapping[str, Any]
    atol: float = 1e-2  # max |backend - eager| above which the backend's timing is not trusted

    def __hash__(self) -> int:  # options hold lists: hash their text so specs can key dicts and sets
        return hash((self.name, self.dtype, self.atol, repr(sorted(self.options.items()))))

    @property
    def key(self) -> str:
        """The key of this backend's outcomes (and of the runner's ``profile/<model>/<key>`` unit)."""
        return f"{self.name}-{self.dtype}"


@runtime_checkable
class Backend(Protocol):
    """What the registry holds. ``BaseBackend`` implements everything but ``build``."""

    # read-only properties, so the class attributes of a ``BaseBackend`` subclass satisfy them
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def install(self) -> str:
        """What to install when a package it needs is missing."""

    @property
    def devices(self) -> Mapping[str, tuple[str, ...]]:
        """Device type (cpu, cuda) -> the dtypes the backend runs there."""

    @property
    def options(self) -> Mapping[str, Option]:
        """Its ``backend.options``: name -> ``Option``."""

    @property
    def graphs(self) -> tuple[str, ...]:
        """Which of ``GRAPHS`` it can build (``BuildContext.graph``)."""

    @property
    def display_name(self) -> str:
        """How records and reports name it ("PyTorch eager", "TensorRT"); empty: its ``name``."""

    @property
    def fingerprint_fields(self) -> tuple[str, ...]:
        """Facts its runner reports (``BackendRunner.info``) that change its speed."""

    def fingerprint(self, options: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
        """What changes its speed, for the record's fingerprint (``records.environment``): its
        resolved ``options`` and the facts of its runner's ``info`` that matter; the gate compares
        every key (``checks/fingerprint.py``), so two runs that differ in one are not compared."""

    def missing(self) -> str | None:
        """Why this backend cannot run on any device here (a missing package), else None. No torch."""

    def resolve_options(self, options: Mapping[str, Any], *, key: str = "backend.options") -> dict[str, Any]:
        """Defaults filled in, types checked; unknown names are a ``ConfigError``."""

    def check(self, dtype: str, device: str, options: Mapping[str, Any]) -> None:
        """``BackendUnavailable`` with the reason when this machine cannot run this combination."""

    def export(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> Path | None:
        """The model file this backend runs (ONNX ...), written under ``ctx.work_dir``; None if none."""

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        """A runner for ``adapter`` (already fp32 on ``ctx.device``, in eval mode)."""

    def describe(self) -> dict[str, Any]:
        """Facts for the record: runtime versions and the like."""


class BaseBackend:
    """The common parts of a backend; subclasses set the class attributes and ``build``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: importable modules the backend needs (checked with ``find_spec``, so nothing is imported)
    packages: ClassVar[tuple[str, ...]] = ()
    #: what to install when a package is missing
    install: ClassVar[str] = ""
    #: device type -> dtypes it runs there; a device type absent here is not supported
    devices: ClassVar[Mapping[str, tuple[str, ...]]] = {"cpu": ("fp32",)}
    options: ClassVar[Mapping[str, Option]] = {}
    #: the graphs ``build`` accepts; a backend without ``deploy`` gets the postprocessor in Python
    graphs: ClassVar[tuple[str, ...]] = ("model",)
    #: how deviations and reports name it; empty: ``name``
    display_name: ClassVar[str] = ""
    #: fields of ``records.environment.fingerprint`` that change this backend's speed beyond the
    #: machine's (its runtime's version, providers, export settings): timings differing in one
    #: are not compared
    fingerprint_fields: ClassVar[tuple[str, ...]] = ()
    #: options that do not change its speed (a cache folder ...): left out of ``fingerprint``
    fingerprint_ignores: ClassVar[tuple[str, ...]] = ()
    #: precisions whose build needs calibration data (``BuildContext.calibration``)
    calibrated: ClassVar[tuple[str, ...]] = ()

    @property
    def precisions(self) -> tuple[str, ...]:
        """Every precision it runs on some device (``devices``), in ``DTYPES`` order."""
        return tuple(d for d in DTYPES if any(d in ds for ds in self.devices.values()))

    def missing(self) -> str | None:
        absent = [p for p in self.packages if importlib.util.find_spec(p) is None]
        if not absent:
            return None
        hint = f" ({self.install})" if self.install else ""
        return f"{self.name} backend: the {', '.join(absent)} package is not installed{hint}"

    def resolve_options(self, options: Mapping[str, Any], *, key: str = "backend.options") -> dict[str, Any]:
        unknown = [k for k in options if k not in self.options]
        if unknown:
            name = str(unknown[0])
            close = difflib.get_close_matches(name, list(self.options), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            known = ", ".join(self.options) if self.options else "(none)"
            raise ConfigError(
                f"{key}.{name} is not an option of the {self.name} backend.{hint} Its options: {known}"
            )
        return {k: opt.coerce(f"{key}.{k}", options.get(k)) for k, opt in self.options.items()}

    def check(self, dtype: str, device: str, options: Mapping[str, Any]) -> None:
        from dfine_bench.backends._torch import check_device, device_type

        kind = device_type(device)
        if kind not in self.devices:
            where = " or ".join(self.devices)
            raise BackendUnavailable(f"{self.name} backend runs on {where} only (device={device!r})")
        check_device(device)
        dtypes = self.devices[kind]
        if dtype not in dtypes:
            other = [d.upper() for d, ds in self.devices.items() if dtype in ds]
            use = f"on the {kind.upper()} use backend.dtype={'|'.join(dtypes)}"
            if other:
                raise BackendUnavailable(f"{self.name} {dtype} runs on {' or '.join(other)} only; {use}")
            raise BackendUnavailable(f"{self.name} does not support {dtype}; {use}")
        reason = self.missing()
        if reason:
            raise BackendUnavailable(reason)

    def export(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> Path | None:
        return None

    def build(self, adapter: DetectorAdapter, spec: BackendSpec, ctx: BuildContext) -> BackendRunner:
        raise NotImplementedError(f"{type(self).__name__}.build")

    def describe(self) -> dict[str, Any]:
        return {}

    def fingerprint(self, options: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
        """Every resolved option but ``fingerprint_ignores`` (``option.<name>``), the runtime versions
        ``describe`` gives (in ``info``), and the ``fingerprint_fields`` the runner reported."""
        out: dict[str, Any] = {
            f"option.{k}": v for k, v in options.items() if k not in self.fingerprint_ignores
        }
        out.update({k: v for k, v in info.items() if k.endswith("_version")})
        out.update({k: info[k] for k in self.fingerprint_fields if k in info})
        return out
