"""The typed config inside: the composed Hydra config converted once into frozen, validated objects.

``RunSettings.from_config`` is the one place that reads a ``RunConfig`` (dataclasses whose enum
fields may hold members or strings, lists that may be ``ListConfig``); each group's settings
object (``ProfileSettings``, ``EvaluationSettings``, ``DatasetSettings``, ``WeightsSettings``)
checks every range and type when it is built, so a bad value fails here, at start-up, before any
model is built, with one line naming the key (``profiling.warmup=-1: must be >= 0``). Everything
below the CLI takes these objects and reads plain attributes (strings, tuples): nothing else
unwraps enums (``checks.enum_value``), and no raw config travels further.

One definition of each default: every group settings field takes its default from the schema's
dataclass (``config/groups.py``), and ``tests/foundation/test_settings_schema.py`` checks that
both name the same fields.

``seed`` is the run's seed: ``suites/run.yaml`` makes it the default of ``weights.seed``
(random-init weights) and ``dataset.seed`` (the generated dataset); it also seeds torch's global
generator for the run and the fixed image end-to-end timing uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dfine_bench.adapters.registry import get_spec
from dfine_bench.backends import resolve_backend
from dfine_bench.config.checks import (
    check_choice,
    check_device,
    check_device_name,
    check_folder_name,
    check_int,
    check_paper_protocol,
    enum_value,
)
from dfine_bench.config.groups import (
    BootstrapSettings,
    DatasetSettings,
    EvaluationSettings,
    ProfileSettings,
    WeightsSettings,
)
from dfine_bench.config.schema import RunConfig
from dfine_bench.errors import ConfigError
from dfine_bench.records.protocols import PAPER_PROTOCOL, PAPER_T4

if TYPE_CHECKING:  # the backend registry's resolved spec
    from dfine_bench.backends import BackendSpec

PROGRESS = ("auto", "on", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Weights sources a suite may pick per model (sources that need a path are chosen with `weights=`).
PER_MODEL_WEIGHTS = ("auto", "random-init", "fixture")


@dataclass(frozen=True)
class OutputSettings:
    results_dir: Path
    reports_dir: Path
    run_id: str | None
    resume: bool
    report_name: str | None
    progress: str
    log_level: str

    @classmethod
    def from_config(cls, cfg: Any) -> OutputSettings:
        run_id = check_folder_name("output.run_id", cfg.run_id) if cfg.run_id is not None else None
        name = (
            check_folder_name("output.report_name", cfg.report_name) if cfg.report_name is not None else None
        )
        return cls(
            results_dir=Path(cfg.results_dir),
            reports_dir=Path(cfg.reports_dir),
            run_id=run_id,
            resume=bool(cfg.resume),
            report_name=name,
            progress=check_choice("output.progress", str(cfg.progress), PROGRESS),
            log_level=check_choice("output.log_level", str(cfg.log_level).upper(), LOG_LEVELS),
        )


@dataclass(frozen=True)
class SuiteSettings:
    name: str
    models: tuple[str, ...]
    claims: str | None
    tolerances: Mapping[str, float]
    report: bool
    # suite.weights: model -> weights source
    model_weights: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_config(cls, cfg: RunConfig) -> SuiteSettings:
        suite = cfg.suite
        models = (cfg.model.name,) if cfg.model is not None else tuple(suite.models)
        if not models:
            raise ConfigError(f"suite {suite.name!r} lists no models: set suite.models or model=<name>")
        return cls(
            name=str(suite.name),
            models=models,
            claims=suite.claims,
            tolerances=MappingProxyType(dict(suite.tolerances)),
            report=bool(suite.report),
            model_weights=MappingProxyType(_model_weights(suite.weights, models)),
        )


@dataclass(frozen=True)
class RunSettings:
    """Everything a run reads, checked once (see the module docstring)."""

    suite: SuiteSettings
    device: str
    seed: int
    protocol: str
    reference_device: str | None
    weights: WeightsSettings
    dataset: DatasetSettings  # checked here; resolved (found or generated) by dfine_bench.data
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
        seed = check_int("seed", cfg.seed, minimum=0)
        device = str(cfg.device)
        check_device(device) if check_hardware else check_device_name(device)
        protocol = str(cfg.protocol.name)
        if check_hardware and protocol == PAPER_PROTOCOL:
            check_paper_protocol()
        specs = tuple(backends) if backends is not None else (resolve_backend_node(cfg.backend),)
        profile = _profile(cfg, device, protocol)
        _check_backends(specs, profile)
        return cls(
            suite=SuiteSettings.from_config(cfg),
            device=device,
            seed=seed,
            protocol=protocol,
            reference_device=cfg.protocol.reference_device,
            weights=WeightsSettings.from_config(cfg),
            dataset=DatasetSettings.from_config(cfg.dataset),
            evaluation=EvaluationSettings.from_config(cfg.evaluation),
            profile=profile,
            backends=specs,
            output=OutputSettings.from_config(cfg.output),
        )


def _profile(cfg: RunConfig, device: str, protocol: str) -> ProfileSettings:
    """The profiling settings, checked against the device; the paper's protocol fixes its own."""
    profile = ProfileSettings.from_config(cfg.profiling, seed=int(cfg.seed))
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
    if protocol == PAPER_PROTOCOL:
        # the paper's protocol: its batch size and what it times (the deploy graph)
        profile = dataclasses.replace(profile, batch_sizes=(PAPER_T4.batch_size,), timed=PAPER_T4.timed)
    return profile


def _check_backends(specs: tuple[BackendSpec, ...], profile: ProfileSettings) -> None:
    if profile.enabled and not specs:
        raise ConfigError("suite.backends resolves to no backend: list one, e.g. [eager]")
    labels = [b.key for b in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"suite.backends lists {', '.join(dupes)} more than once")


def resolve_backend_node(node: Any, key: str = "backend") -> BackendSpec:
    """A ``backend`` group node checked against the backend registry (names, dtype, options)."""
    return resolve_backend(node, key=key)


def _model_weights(mapping: Mapping[str, str], models: tuple[str, ...]) -> dict[str, str]:
    """``suite.weights``, checked: listed models only, sources without a path, formats the model has."""
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


__all__ = [
    "PAPER_PROTOCOL",
    "BootstrapSettings",
    "DatasetSettings",
    "EvaluationSettings",
    "OutputSettings",
    "ProfileSettings",
    "RunSettings",
    "SuiteSettings",
    "WeightsSettings",
    "check_device",
    "check_device_name",
    "check_folder_name",
    "enum_value",
    "resolve_backend_node",
]
