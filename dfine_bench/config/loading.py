"""Finding the suites, registering the schema with Hydra, composing configs with clear errors.

The suites ship inside the wheel as ``dfine_bench/suites`` (a source checkout reads the
top-level ``suites/``). Users add their own folders with ``--suites-dir``; Hydra's search
path then finds their files beside the built-in ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import dfine_bench
from dfine_bench.adapters.registry import list_models
from dfine_bench.backends import get_backend, list_backends
from dfine_bench.config.checks import enum_value
from dfine_bench.config.schema import GROUP_SCHEMAS, BackendConfig, ModelConfig, RunConfig
from dfine_bench.config.settings import RunSettings, resolve_backend_node
from dfine_bench.config.train_schema import TrainConfig, TrainSection
from dfine_bench.errors import ConfigError
from dfine_bench.records.protocols import PAPER_PROTOCOL

PRIMARY_CONFIG = "run"


def suites_dir() -> Path:
    """The built-in suites folder: inside the installed package, else the checkout's ``suites/``."""
    pkg = Path(dfine_bench.__file__).resolve().parent
    for candidate in (pkg / "suites", pkg.parent / "suites"):
        if (candidate / f"{PRIMARY_CONFIG}.yaml").is_file():
            return candidate
    raise ConfigError(
        f"the built-in suites are missing (looked in {pkg / 'suites'} and {pkg.parent / 'suites'})"
    )


def register_configs(extra_dirs: Sequence[str | Path] = ()) -> None:
    """Store the schema and one ``model`` option per registered model in Hydra's ConfigStore, and a
    ``backend`` option per registered backend that has no YAML file (a plug-in's: its options are
    the backend's own defaults), so ``backend=<name>`` and ``suite.backends`` name it as any other."""
    cs = ConfigStore.instance()
    cs.store(name="base_run", node=RunConfig)
    cs.store(name="base_train", node=TrainConfig)  # root of `dfine-bench train` (suites/train.yaml)
    for name in list_models():
        cs.store(group="model", name=name, node=ModelConfig(name=name))
    # a file and a stored node of one name would be "validated against the schema" (deprecated)
    files = set(group_options("backend", extra_dirs, files_only=True))
    for name in set(list_backends()) - files:  # its options as a file lists them: null, its default
        options: dict[str, Any] = dict.fromkeys(get_backend(name).options)
        cs.store(group="backend", name=name, node=BackendConfig(name=name, options=options))


def search_path_override(extra_dirs: Sequence[str | Path]) -> list[str]:
    """The Hydra override that adds user suite folders to the search path."""
    dirs = []
    for d in extra_dirs:
        path = Path(d).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--suites-dir {d}: no such folder")
        dirs.append(f"file://{path}")
    return [f"hydra.searchpath=[{','.join(dirs)}]"] if dirs else []


def group_options(
    group: str, extra_dirs: Sequence[str | Path] = (), *, files_only: bool = False
) -> list[str]:
    """The names a config group offers (files in every suites folder, plus stored nodes)."""
    names: set[str] = set()
    for root in (suites_dir(), *map(Path, extra_dirs)):
        folder = root / group
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yaml"))
    if files_only:
        return sorted(names)
    if group == "model":
        names.update(list_models())
    if group == "backend":
        names.update(list_backends())
    return sorted(names)


def compose_config(
    overrides: Sequence[str] = (), extra_dirs: Sequence[str | Path] = (), *, config_name: str = PRIMARY_CONFIG
) -> DictConfig:
    """Compose a root config (``run``, or ``train``) for ``overrides`` or raise a one-line ``ConfigError``."""
    register_configs(extra_dirs)
    overrides = [*overrides, *search_path_override(extra_dirs)]
    # inside a Hydra app (a multirun job) its global state is put back afterwards
    outer = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(suites_dir()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
            OmegaConf.to_object(cfg)  # type-checks every value against the schema
            return cfg
    except (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
        OmegaConfBaseException,
        ValueError,
    ) as exc:
        raise ConfigError(friendly_error(exc, extra_dirs)) from None
    finally:
        GlobalHydra.instance().clear()
        if outer is not None:
            GlobalHydra.instance().initialize(outer)


def to_run_config(cfg: DictConfig) -> RunConfig:
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, RunConfig)
    return obj


def backend_nodes(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    extra_dirs: Sequence[str | Path] = (),
    explicit_groups: Collection[str] = (),
) -> list[Any]:
    """The backend group nodes a run profiles, each composed by Hydra.

    ``suite.backends`` names options of the ``backend`` group; each is composed like
    ``backend=<name>`` with the same overrides and search path, so a backend file from
    ``--suites-dir`` works there as it does on the command line. The suite's list is not used when
    the command line chose ``backend=``/``protocol=`` or the protocol is the paper's (one backend).
    """
    names = [str(n) for n in cfg.suite.backends]
    chosen = set(explicit_groups) & {"backend", "protocol"}
    if not names or chosen or str(cfg.protocol.name) == PAPER_PROTOCOL:
        return [cfg.backend]
    out: list[Any] = []
    for name in names:
        if name == str(enum_value(cfg.backend.name)):
            out.append(cfg.backend)
            continue
        try:
            composed = compose_config([*overrides, f"backend={name}"], extra_dirs)
        except ConfigError as exc:
            raise ConfigError(f"suite.backends: {exc}") from None
        out.append(composed.backend)
    return out


def load_settings(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    extra_dirs: Sequence[str | Path] = (),
    *,
    check_hardware: bool = True,
) -> RunSettings:
    """The composed config as checked, typed ``RunSettings`` (every range error is raised here)."""
    groups = explicit_groups(overrides)
    nodes = backend_nodes(cfg, overrides, extra_dirs, groups)
    backends = [
        resolve_backend_node(n, key="backend" if n is cfg.backend else f"suite.backends[{i}]")
        for i, n in enumerate(nodes)
    ]
    return RunSettings.from_config(to_run_config(cfg), backends, check_hardware=check_hardware)


def explicit_groups(overrides: Sequence[str]) -> list[str]:
    """Top-level names the user set on the command line (``backend=x`` or ``backend.dtype=y``)."""
    out = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        out.append(key.split(".", 1)[0].split("/", 1)[0])
    return out


def friendly_error(exc: BaseException, extra_dirs: Sequence[str | Path] = ()) -> str:
    """Turn Hydra/OmegaConf's multi-line errors into one line naming the key and the allowed values."""
    cause: BaseException = exc
    while cause.__cause__ is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    text = str(cause).strip()
    first = text.splitlines()[0] if text else type(cause).__name__

    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if missing:
        group, name = missing.groups()
        options = group_options(group, extra_dirs)
        close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"unknown {group} {name!r}.{hint} Available: {', '.join(options)}"

    full_key = getattr(cause, "full_key", None)
    if not full_key:
        key_line = re.search(r"full_key: (\S+)", text)
        full_key = key_line.group(1) if key_line else None
    key_match = re.search(r"Key '([^']+)' not in '(\w+)'", text)
    if key_match:
        key, schema = key_match.groups()
        where = full_key or key
        fields = _schema_fields(schema)
        close = difflib.get_close_matches(key, fields, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"unknown config key {where!r}.{hint} Valid keys of {schema}: {', '.join(fields)}"

    enum_match = re.search(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", text)
    if enum_match:
        value, allowed = enum_match.groups()
        return f"bad value {value!r} for {full_key or 'a config key'}: allowed values are {allowed}"

    if full_key:
        return f"bad value for {full_key}: {first}"
    return first


def _schema_fields(schema_name: str) -> list[str]:
    for cls in (RunConfig, *GROUP_SCHEMAS.values(), TrainConfig, TrainSection):
        if cls.__name__ == schema_name:
            return [f.name for f in dataclasses.fields(cls)]
    return []


def describe_config(cfg: DictConfig) -> dict[str, Any]:
    """A plain dict of the resolved config, for run.json."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}
