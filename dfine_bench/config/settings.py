"""The typed config inside: the composed Hydra config converted once into frozen, validated objects.

``RunSettings.from_config`` is the one place that reads a ``RunConfig`` (dataclasses whose enum
fields may hold members or strings, lists that may be ``ListConfig``) and checks every range and
type: a bad value fails here, at start-up, before any model is built, with one line naming the key
(``profiling.warmup=-1: must be >= 0``). Everything downstream takes these objects and reads plain
attributes; nothing else unwraps enums or repeats defaults.

``seed`` is the run's seed: ``suites/run.yaml`` makes it the default of ``weights.seed``
(random-init weights) and ``dataset.seed`` (the generated dataset); it also seeds torch's global
generator for the run and the fixed image end-to-end timing uses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dfine_bench.config.schema import DatasetConfig, EvaluationConfig, RunConfig
from dfine_bench.errors import ConfigError

if TYPE_CHECKING:  # the backend registry's resolved spec; the registry is imported when needed
    from dfine_bench.profiling.backends import BackendSpec

#: The paper's measurement protocol: its settings are fixed (batch size 1, the deploy graph, one backend).
PAPER_PROTOCOL = "paper_t4"
TIMED_MODES = ("model", "model+postprocess", "end-to-end")
PROFILE_INPUTS = ("fixed", "dataset")
PROGRESS = ("auto", "on", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
#: A run id or report name: one folder name, never ``.``/``..`` or a path.
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def enum_value(v: Any) -> Any:
    """An enum member's value, else ``v`` unchanged: the one place config enums are unwrapped."""
    return v.value if isinstance(v, Enum) else v


# -- checks: each raises one line naming the key --------------------------------------------
def _int(key: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r}: must be an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{key}={value}: must be >= {minimum}")
    return int(value)


def _float(key: str, value: Any, *, minimum: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{key}={value!r}: must be a number")
    if value < minimum or (strict and value == minimum):
        raise ConfigError(f"{key}={value}: must be {'>' if strict else '>='} {minimum:g}")
    return float(value)


def _choice(key: str, value: Any, allowed: Iterable[str]) -> str:
    value = enum_value(value)
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: allowed values are {', '.join(allowed)}")
    return str(value)


def _size(key: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    items = list(value) if value is not None and not isinstance(value, (str, bytes)) else []
    if len(items) != 2:
        raise ConfigError(f"{key}={value!r}: must be [height, width]")
    h, w = (_int(key, v, minimum=minimum) for v in items)
    return h, w


def check_folder_name(key: str, value: str) -> str:
    """A run id or report name must be one plain folder name (no ``..``, ``.``, ``/`` or leading dot)."""
    if not _FOLDER_NAME.match(value or ""):
        raise ConfigError(
            f"{key}={value!r}: must be one folder name of letters, digits and . _ + - that does not "
            "start with a dot (at most 128 characters), e.g. my-run-1"
        )
    return value


def check_device_name(device: str, key: str = "device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (whether this machine has it is ``check_device``)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(f"{key}={device!r}: must be cpu, cuda or cuda:N")
    return device


def check_device(device: str, key: str = "device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, and present on this machine."""
    check_device_name(device, key)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"{key}={device}: CUDA is not available on this machine "
                f"(torch {torch.__version__}, cuda build {torch.version.cuda or 'none'}); use device=cpu"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_paper_protocol() -> None:
    """``protocol=paper_t4`` needs CUDA and TensorRT; refused at start-up, naming what is missing."""
    import importlib.util

    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append(
            f"a CUDA device (torch {torch.__version__}, cuda build {torch.version.cuda or 'none'})"
        )
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("TensorRT (pip install tensorrt)")
    if missing:
        raise ConfigError(
            f"protocol={PAPER_PROTOCOL} needs an NVIDIA GPU with CUDA and TensorRT; this machine lacks "
            f"{' and '.join(missing)}: use protocol=end_to_end or protocol=model_only here"
        )


# -- the typed objects ----------------------------------------------------------------------
@dataclass(frozen=True)
class ProfileSettings:
    """What ``profile_model`` reads: the ``profiling`` group, typed and range-checked."""

    enabled: bool = True
    complexity: bool = True
    latency: bool = True
    throughput: bool = True
    trace: bool = False
    timed: str = "model"
    input: str = "fixed"
    num_images: int = 8
    warmup: int = 10
    iters: int = 50
    min_iters: int = 10
    max_time_s: float = 20.0
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    max_batch_size: int = 64
    throughput_iters: int = 10
    threads: int | None = None
    cv_warn: float = 0.10
    max_load_per_core: float = 1.25  # the schema's default (profiling.validity says why 1.25)
    max_cpu_wait: float = 0.10
    warmup_time_s: float = 0.2
    min_time_s: float = 3.0
    cuda_graph: bool = False
    spin_wait: bool = False
    tf32: bool | None = None
    stages: bool = True
    stage_iters: int = 20
    flops_input_size: tuple[int, int] = (640, 640)
    trace_steps: int = 5
    seed: int = 0  # seeds the fixed random image end-to-end timing preprocesses

    def __post_init__(self) -> None:
        k = "profiling."
        set_ = object.__setattr__
        set_(self, "timed", _choice(k + "timed", self.timed, TIMED_MODES))
        set_(self, "input", _choice(k + "input", self.input, PROFILE_INPUTS))
        _int(k + "num_images", self.num_images, minimum=1)
        _int(k + "warmup", self.warmup, minimum=0)
        _int(k + "iters", self.iters, minimum=1)
        _int(k + "min_iters", self.min_iters, minimum=1)
        set_(self, "max_time_s", _float(k + "max_time_s", self.max_time_s, minimum=0, strict=True))
        sizes = tuple(self.batch_sizes)
        if not sizes:
            raise ConfigError(f"{k}batch_sizes=[]: list at least one batch size, e.g. [1]")
        set_(self, "batch_sizes", tuple(_int(k + "batch_sizes", b, minimum=1) for b in sizes))
        _int(k + "max_batch_size", self.max_batch_size, minimum=1)
        _int(k + "throughput_iters", self.throughput_iters, minimum=1)
        if self.threads is not None:
            _int(k + "threads", self.threads, minimum=1)
        set_(self, "cv_warn", _float(k + "cv_warn", self.cv_warn, minimum=0))
        set_(
            self,
            "max_load_per_core",
            _float(k + "max_load_per_core", self.max_load_per_core, minimum=0, strict=True),
        )
        set_(self, "max_cpu_wait", _float(k + "max_cpu_wait", self.max_cpu_wait, minimum=0))
        set_(self, "warmup_time_s", _float(k + "warmup_time_s", self.warmup_time_s, minimum=0))
        set_(self, "min_time_s", _float(k + "min_time_s", self.min_time_s, minimum=0))
        for name in ("cuda_graph", "spin_wait"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{k}{name}={getattr(self, name)!r}: must be true or false")
        if self.tf32 is not None and not isinstance(self.tf32, bool):
            raise ConfigError(f"{k}tf32={self.tf32!r}: must be true, false or null (torch's default)")
        _int(k + "stage_iters", self.stage_iters, minimum=1)
        set_(self, "flops_input_size", _size(k + "flops_input_size", self.flops_input_size))
        _int(k + "trace_steps", self.trace_steps, minimum=1)
        _int("seed", self.seed, minimum=0)

    @classmethod
    def from_config(cls, cfg: Any, *, seed: int = 0) -> ProfileSettings:
        """From a ``ProfilingConfig`` (dataclass or DictConfig)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"seed"}
        values = {n: enum_value(getattr(cfg, n)) for n in names if hasattr(cfg, n)}
        for n in ("batch_sizes", "flops_input_size"):
            if n in values and values[n] is not None:
                values[n] = tuple(values[n])
        return cls(**values, seed=seed)


@dataclass(frozen=True)
class WeightsRequest:
    """Which weights to build each model with."""

    source: str = "auto"
    path: str | None = None
    revision: str | None = None
    seed: int = 0
    trust_remote_code: bool = False
    num_classes: int | None = None  # model.num_classes
    input_size: tuple[int, int] | None = None  # model.input_size, else suite.input_size


@dataclass(frozen=True)
class EvaluationSettings:
    """The ``evaluation`` group, checked; ``config`` is what ``evaluate_model`` reads."""

    enabled: bool
    engine: str
    batch_size: int
    config: EvaluationConfig


@dataclass(frozen=True)
class OutputSettings:
    results_dir: Path
    reports_dir: Path
    run_id: str | None
    resume: bool
    report_name: str | None
    progress: str
    log_level: str


@dataclass(frozen=True)
class SuiteSettings:
    name: str
    models: tuple[str, ...]
    claims: str | None
    tolerances: Mapping[str, float]
    report: bool
    # suite.weights: model -> weights source
    model_weights: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RunSettings:
    """Everything a run reads, checked once (see the module docstring)."""

    suite: SuiteSettings
    device: str
    seed: int
    protocol: str
    reference_device: str | None
    weights: WeightsRequest
    dataset: DatasetConfig  # checked here; resolved (found or generated) by dfine_bench.data
    evaluation: EvaluationSettings
    profile: ProfileSettings
    backends: tuple[BackendSpec, ...]  # what each profile unit runs on
    output: OutputSettings

    @property
    def input_size(self) -> tuple[int, int] | None:
        return self.weights.input_size

    @classmethod
    def from_config(
        cls, cfg: RunConfig, backends: Iterable[BackendSpec] | None = None, *, check_hardware: bool = True
    ) -> RunSettings:
        """Check and convert ``cfg``; ``backends`` are the backends to profile, resolved against the
        backend registry (default: ``cfg.backend``, see ``config.loading.load_settings`` for the
        suite's list). ``check_hardware=False`` skips "is CUDA here"."""
        seed = _int("seed", cfg.seed, minimum=0)
        device = str(cfg.device)
        check_device(device) if check_hardware else check_device_name(device)
        suite = cfg.suite
        models = (cfg.model.name,) if cfg.model is not None else tuple(suite.models)
        if not models:
            raise ConfigError(f"suite {suite.name!r} lists no models: set suite.models or model=<name>")
        input_size = None
        if cfg.model is not None and cfg.model.input_size:
            input_size = _size("model.input_size", cfg.model.input_size)
        elif suite.input_size:
            input_size = _size("suite.input_size", suite.input_size)
        num_classes = cfg.model.num_classes if cfg.model is not None else None
        if num_classes is not None:
            _int("model.num_classes", num_classes, minimum=1)
        w = cfg.weights
        weights = WeightsRequest(
            source=str(enum_value(w.source)),
            path=w.path,
            revision=w.revision,
            seed=_int("weights.seed", w.seed, minimum=0),
            trust_remote_code=bool(w.trust_remote_code),
            num_classes=num_classes,
            input_size=input_size,
        )
        profile = ProfileSettings.from_config(cfg.profiling, seed=seed)
        if device.startswith("cuda") and profile.min_time_s > profile.max_time_s:
            raise ConfigError(
                f"profiling.min_time_s={profile.min_time_s:g} is more than "
                f"profiling.max_time_s={profile.max_time_s:g}: raise max_time_s or lower min_time_s"
            )
        if not device.startswith("cuda"):
            for name in ("cuda_graph", "spin_wait"):
                if getattr(profile, name):
                    raise ConfigError(
                        f"profiling.{name}=true needs a CUDA device; device={device} has none: "
                        f"drop profiling.{name} or use device=cuda"
                    )
        if str(cfg.protocol.name) == PAPER_PROTOCOL:
            # the paper's protocol: batch 1, the deploy graph (the model with its top-k postprocessor)
            profile = dataclasses.replace(profile, batch_sizes=(1,), timed="model+postprocess")
        if check_hardware and str(cfg.protocol.name) == PAPER_PROTOCOL:
            check_paper_protocol()
        specs = tuple(backends) if backends is not None else (resolve_backend_node(cfg.backend),)
        if profile.enabled and not specs:
            raise ConfigError("suite.backends resolves to no backend: list one, e.g. [eager]")
        labels = [b.key for b in specs]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ConfigError(f"suite.backends lists {', '.join(dupes)} more than once")
        ev = cfg.evaluation
        evaluation = EvaluationSettings(
            enabled=bool(ev.enabled),
            engine=str(enum_value(ev.engine)),
            batch_size=_int("evaluation.batch_size", ev.batch_size, minimum=1),
            config=ev,
        )
        _int("evaluation.num_workers", ev.num_workers, minimum=0)
        fraction = _float("evaluation.max_failed_fraction", ev.max_failed_fraction, minimum=0)
        if fraction > 1:
            raise ConfigError(f"evaluation.max_failed_fraction={fraction}: must be between 0 and 1")
        return cls(
            suite=SuiteSettings(
                name=str(suite.name),
                models=models,
                claims=suite.claims,
                tolerances=MappingProxyType(dict(suite.tolerances)),
                report=bool(suite.report),
                model_weights=MappingProxyType(_model_weights(suite.weights, models)),
            ),
            device=device,
            seed=seed,
            protocol=str(cfg.protocol.name),
            reference_device=cfg.protocol.reference_device,
            weights=weights,
            dataset=_dataset(cfg.dataset),
            evaluation=evaluation,
            profile=profile,
            backends=specs,
            output=_output(cfg),
        )


def _dataset(d: DatasetConfig) -> DatasetConfig:
    if d.subset is not None:
        _int("dataset.subset", d.subset, minimum=1)
    _int("dataset.num_images", d.num_images, minimum=1)
    _size("dataset.image_size", d.image_size, minimum=32)
    _int("dataset.seed", d.seed, minimum=0)
    return d


def _output(cfg: RunConfig) -> OutputSettings:
    o = cfg.output
    run_id = check_folder_name("output.run_id", o.run_id) if o.run_id is not None else None
    name = check_folder_name("output.report_name", o.report_name) if o.report_name is not None else None
    level = str(o.log_level).upper()
    return OutputSettings(
        results_dir=Path(o.results_dir),
        reports_dir=Path(o.reports_dir),
        run_id=run_id,
        resume=bool(o.resume),
        report_name=name,
        progress=_choice("output.progress", str(o.progress), PROGRESS),
        log_level=_choice("output.log_level", level, LOG_LEVELS),
    )


def resolve_backend_node(node: Any, key: str = "backend") -> BackendSpec:
    """A ``backend`` group node checked against the backend registry (names, dtype, options)."""
    from dfine_bench.profiling.backends import resolve_backend  # the registry, without torch

    return resolve_backend(node, key=key)


__all__ = [
    "PAPER_PROTOCOL",
    "EvaluationSettings",
    "OutputSettings",
    "ProfileSettings",
    "RunSettings",
    "SuiteSettings",
    "WeightsRequest",
    "check_device",
    "check_device_name",
    "check_folder_name",
    "enum_value",
    "resolve_backend_node",
]


#: Weights sources a suite may pick per model (sources that need a path are chosen with `weights=`).
PER_MODEL_WEIGHTS = ("auto", "random-init", "fixture")


def _model_weights(mapping: Mapping[str, str], models: tuple[str, ...]) -> dict[str, str]:
    """``suite.weights``, checked: listed models only, sources without a path, formats the model has."""
    from dfine_bench.adapters.registry import get_spec

    out: dict[str, str] = {}
    for model, source in mapping.items():
        value = str(source).strip().lower().replace("_", "-")
        if value not in PER_MODEL_WEIGHTS:
            raise ConfigError(
                f"suite.weights.{model}={source!r}: choose one of {', '.join(PER_MODEL_WEIGHTS)} "
                "(weights from a path are set with weights=local|official|hub weights.path=...)"
            )
        if models and model not in models:
            continue  # a suite may name weights for models a `model=` override left out
        if value == "fixture" and "fixture" not in get_spec(model).weights_formats:
            raise ConfigError(f"suite.weights.{model}=fixture: {model} has no fixture weights")
        out[model] = value
    return out
