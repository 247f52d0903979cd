"""The settings of each config group: frozen, typed, checked when built, defaults from the schema.

``ProfileSettings``, ``EvaluationSettings`` (with ``BootstrapSettings``), ``DatasetSettings`` and
``WeightsSettings`` are what the code below the CLI reads of the ``profiling``, ``evaluation``,
``dataset`` and ``weights`` groups: plain values (strings, tuples), every range and type checked in
``__post_init__`` with one line naming the key. Each field that mirrors a schema field takes its
default from the schema's dataclass (``_P``, ``_E``, ``_D``, ``_W``, ``_B``), the one place it is
written; ``tests/foundation/test_settings_schema.py`` checks that both name the same fields.
``config/settings.py`` builds them from the composed config (``from_config``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dfine_bench.config.checks import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_names,
    check_size,
    enum_value,
)
from dfine_bench.config.schema import (
    EXIF_MODES,
    MAX_GENERATED_IMAGES,
    SIZE_MISMATCH_MODES,
    BootstrapConfig,
    DatasetConfig,
    DatasetKind,
    Engine,
    EvaluationConfig,
    ProfileInput,
    ProfilingConfig,
    RunConfig,
    Timed,
    WeightsConfig,
    WeightsSource,
)
from dfine_bench.errors import ConfigError

TIMED_MODES = tuple(t.value for t in Timed)
PROFILE_INPUTS = tuple(i.value for i in ProfileInput)
ENGINES = tuple(e.value for e in Engine)
DATASET_KINDS = tuple(k.value for k in DatasetKind)
WEIGHTS_SOURCES = tuple(s.value for s in WeightsSource)

# The schema's defaults, the one place each is written (see the module docstring).
_P, _E, _D, _W = ProfilingConfig(), EvaluationConfig(), DatasetConfig(), WeightsConfig()
_B = BootstrapConfig()
#: Fewer bootstrap replicates give percentile intervals whose ends rest on two or three values.
MIN_BOOTSTRAP_REPLICATES = 100

_S = TypeVar("_S")


def _from_group(cls: type[_S], cfg: Any, **extra: Any) -> _S:
    """``cls`` from a schema group (dataclass or DictConfig): the fields both have, enums unwrapped,
    lists as tuples (the settings' ``__post_init__`` checks each)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in extra or not hasattr(cfg, f.name):
            continue
        v = enum_value(getattr(cfg, f.name))
        values[f.name] = tuple(v) if v is not None and not isinstance(v, (str, bytes, int, float)) else v
    return cls(**values, **extra)


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen: the checked, normalised value replaces the given one


# -- the typed objects ----------------------------------------------------------------------
@dataclass(frozen=True)
class ProfileSettings:
    """What ``profile_model`` reads: the ``profiling`` group, typed and range-checked."""

    enabled: bool = _P.enabled
    complexity: bool = _P.complexity
    latency: bool = _P.latency
    throughput: bool = _P.throughput
    trace: bool = _P.trace
    timed: str = _P.timed.value
    input: str = _P.input.value
    num_images: int = _P.num_images
    warmup: int = _P.warmup
    iters: int = _P.iters
    min_iters: int = _P.min_iters
    max_time_s: float = _P.max_time_s
    batch_sizes: tuple[int, ...] = tuple(_P.batch_sizes)
    max_batch_size: int = _P.max_batch_size
    throughput_iters: int = _P.throughput_iters
    threads: int | None = _P.threads
    cv_warn: float = _P.cv_warn
    max_load_per_core: float = _P.max_load_per_core  # profiling.validity says why 1.25
    max_cpu_wait: float = _P.max_cpu_wait
    warmup_time_s: float = _P.warmup_time_s
    min_time_s: float = _P.min_time_s
    cuda_graph: bool = _P.cuda_graph
    spin_wait: bool = _P.spin_wait
    tf32: bool | None = _P.tf32
    stages: bool = _P.stages
    stage_iters: int = _P.stage_iters
    # None: each model's own input size (``flops_size``)
    flops_input_size: tuple[int, int] | None = (
        None if _P.flops_input_size is None else check_size("profiling.flops_input_size", _P.flops_input_size)
    )
    trace_steps: int = _P.trace_steps
    seed: int = 0  # the run's seed: seeds the fixed random image end-to-end timing preprocesses

    def __post_init__(self) -> None:
        k = "profiling."
        _set(self, "timed", check_choice(k + "timed", self.timed, TIMED_MODES))
        _set(self, "input", check_choice(k + "input", self.input, PROFILE_INPUTS))
        positive = ("num_images", "iters", "min_iters", "max_batch_size", "throughput_iters", "stage_iters")
        for name in (*positive, "trace_steps"):
            check_int(k + name, getattr(self, name), minimum=1)
        check_int(k + "warmup", self.warmup, minimum=0)
        if self.threads is not None:
            check_int(k + "threads", self.threads, minimum=1)
        for name in ("max_time_s", "max_load_per_core"):
            _set(self, name, check_float(k + name, getattr(self, name), minimum=0, strict=True))
        for name in ("cv_warn", "max_cpu_wait", "warmup_time_s", "min_time_s"):
            _set(self, name, check_float(k + name, getattr(self, name), minimum=0))
        sizes = tuple(self.batch_sizes)
        if not sizes:
            raise ConfigError(f"{k}batch_sizes=[]: list at least one batch size, e.g. [1]")
        _set(self, "batch_sizes", tuple(check_int(k + "batch_sizes", b, minimum=1) for b in sizes))
        for name in (
            "enabled",
            "complexity",
            "latency",
            "throughput",
            "trace",
            "cuda_graph",
            "spin_wait",
            "stages",
        ):
            check_bool(k + name, getattr(self, name))
        check_bool(k + "tf32", self.tf32, optional=True)  # null: torch's default
        if self.flops_input_size is not None:
            _set(self, "flops_input_size", check_size(k + "flops_input_size", self.flops_input_size))
        check_int("seed", self.seed, minimum=0)

    def flops_size(self, native: Sequence[int]) -> tuple[int, int]:
        """The (h, w) a model whose input size is ``native`` gets its params/GFLOPs counted at: the
        size the user set (``profiling.flops_input_size``), else its own; profiling counts at it and
        the run plan keys the complexity record by it, so both read it from here."""
        h, w = self.flops_input_size or native
        return int(h), int(w)

    @classmethod
    def from_config(cls, cfg: Any, *, seed: int = 0) -> ProfileSettings:
        """From a ``ProfilingConfig`` (dataclass or DictConfig)."""
        return _from_group(cls, cfg, seed=seed)


@dataclass(frozen=True)
class BootstrapSettings:
    """``evaluation.bootstrap``: the AP confidence intervals (``evaluation/bootstrap.py``), checked."""

    enabled: bool = _B.enabled
    replicates: int = _B.replicates  # B
    seed: int = _B.seed
    confidence: float = _B.confidence

    def __post_init__(self) -> None:
        k = "evaluation.bootstrap."
        check_bool(k + "enabled", self.enabled)
        check_int(k + "replicates", self.replicates, minimum=0)
        if self.enabled and self.replicates < MIN_BOOTSTRAP_REPLICATES:
            raise ConfigError(
                f"{k}replicates={self.replicates}: the AP bootstrap needs B >= {MIN_BOOTSTRAP_REPLICATES} "
                f"replicates (default 1000); raise it, or set {k}enabled=false"
            )
        check_int(k + "seed", self.seed, minimum=0)
        _set(self, "confidence", check_float(k + "confidence", self.confidence, minimum=0.5, maximum=0.999))

    @classmethod
    def from_config(cls, cfg: Any) -> BootstrapSettings:
        return _from_group(cls, cfg)


@dataclass(frozen=True)
class EvaluationSettings:
    """What ``evaluate_model`` and the evaluators read: the ``evaluation`` group, typed and checked."""

    enabled: bool = _E.enabled
    engine: str = _E.engine.value
    batch_size: int = _E.batch_size
    num_workers: int = _E.num_workers
    resume: bool = _E.resume
    per_category: bool = _E.per_category
    pr_curves: bool = _E.pr_curves
    max_failed_fraction: float = _E.max_failed_fraction
    evaluators: tuple[str, ...] = tuple(_E.evaluators)
    backends: tuple[str, ...] = tuple(_E.backends)
    worst_images: int = _E.worst_images
    bootstrap: BootstrapSettings = BootstrapSettings()

    def __post_init__(self) -> None:
        k = "evaluation."
        _set(self, "engine", check_choice(k + "engine", self.engine, ENGINES))
        check_int(k + "batch_size", self.batch_size, minimum=1)
        check_int(k + "num_workers", self.num_workers, minimum=0)
        check_int(k + "worst_images", self.worst_images, minimum=0)
        fraction = check_float(k + "max_failed_fraction", self.max_failed_fraction, minimum=0, maximum=1)
        _set(self, "max_failed_fraction", fraction)
        for name in ("enabled", "resume", "per_category", "pr_curves"):
            check_bool(k + name, getattr(self, name))
        _set(self, "evaluators", check_names(k + "evaluators", self.evaluators))
        _set(self, "backends", check_names(k + "backends", self.backends))

    @classmethod
    def from_config(cls, cfg: Any) -> EvaluationSettings:
        """From an ``EvaluationConfig`` (dataclass or DictConfig)."""
        boot = getattr(cfg, "bootstrap", None)
        bootstrap = BootstrapSettings() if boot is None else BootstrapSettings.from_config(boot)
        return _from_group(cls, cfg, bootstrap=bootstrap)


@dataclass(frozen=True)
class DatasetSettings:
    """What ``data.resolve_dataset`` reads: the ``dataset`` group, typed and checked."""

    kind: str = _D.kind.value
    name: str = _D.name
    root: str | None = _D.root
    images: str = _D.images
    annotations: str = _D.annotations
    subset: int | None = _D.subset
    num_images: int = _D.num_images
    image_size: tuple[int, int] = check_size("dataset.image_size", _D.image_size)
    seed: int = _D.seed
    cache_dir: str | None = _D.cache_dir
    exif: str = _D.exif
    size_mismatch: str = _D.size_mismatch

    def __post_init__(self) -> None:
        k = "dataset."
        _set(self, "kind", check_choice(k + "kind", self.kind, DATASET_KINDS))
        if self.subset is not None:
            check_int(k + "subset", self.subset, minimum=1)
        check_int(k + "num_images", self.num_images, minimum=1)
        if self.num_images > MAX_GENERATED_IMAGES:  # checked before anything is written
            raise ConfigError(
                f"dataset.num_images={self.num_images}: the generated dataset holds at most "
                f"{MAX_GENERATED_IMAGES} images; use a smaller number (or a COCO-format dataset)"
            )
        _set(self, "exif", check_choice(k + "exif", self.exif, EXIF_MODES))
        mismatch = check_choice(k + "size_mismatch", self.size_mismatch, SIZE_MISMATCH_MODES)
        _set(self, "size_mismatch", mismatch)
        _set(self, "image_size", check_size(k + "image_size", self.image_size, minimum=32))
        check_int(k + "seed", self.seed, minimum=0)

    @classmethod
    def from_config(cls, cfg: Any) -> DatasetSettings:
        """From a ``DatasetConfig`` (dataclass or DictConfig)."""
        return _from_group(cls, cfg)


@dataclass(frozen=True)
class WeightsSettings:
    """Which weights to build each model with: the ``weights`` group plus ``model.num_classes`` and
    the input size (``model.input_size``, else ``suite.input_size``)."""

    source: str = _W.source.value
    path: str | None = _W.path
    revision: str | None = _W.revision
    seed: int = _W.seed
    trust_remote_code: bool = _W.trust_remote_code
    num_classes: int | None = None  # model.num_classes
    input_size: tuple[int, int] | None = None  # model.input_size, else suite.input_size

    def __post_init__(self) -> None:
        _set(self, "source", check_choice("weights.source", self.source, WEIGHTS_SOURCES))
        check_int("weights.seed", self.seed, minimum=0)
        check_bool("weights.trust_remote_code", self.trust_remote_code)
        if self.num_classes is not None:
            check_int("model.num_classes", self.num_classes, minimum=1)

    @classmethod
    def from_config(cls, cfg: RunConfig) -> WeightsSettings:
        model, suite = cfg.model, cfg.suite
        input_size = None
        if model is not None and model.input_size:
            input_size = check_size("model.input_size", model.input_size)
        elif suite.input_size:
            input_size = check_size("suite.input_size", suite.input_size)
        num_classes = model.num_classes if model is not None else None
        return _from_group(cls, cfg.weights, num_classes=num_classes, input_size=input_size)


__all__ = [
    "BootstrapSettings",
    "DatasetSettings",
    "EvaluationSettings",
    "ProfileSettings",
    "WeightsSettings",
]
