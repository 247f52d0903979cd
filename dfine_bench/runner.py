"""Runs a suite: for each model, its evaluation and profiling tasks, written as result records.

One call of ``run_suite`` is one run folder ``results/<run-id>/``. Work is split into
units (``evaluation/<model>``, ``profile/<model>/<backend>``); each unit's records are
written as soon as it finishes and the unit is marked done in ``run.json``, so an
interrupted run (Ctrl-C, a killed process) keeps everything finished so far and the same
command resumes it: done units are skipped and a half-done evaluation continues from
the predictions already streamed to disk.

Under ``torchrun`` every rank takes part in the evaluations (images are sharded);
only rank 0 profiles, writes records and renders the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.adapters.registry import create_model, get_spec
from dfine_bench.config.loading import suites_dir
from dfine_bench.config.schema import BackendConfig, RunConfig, WeightsSource
from dfine_bench.errors import BackendUnavailable, ConfigError, DfineBenchError
from dfine_bench.records.environment import capture_environment, device_name
from dfine_bench.records.schema import (
    DatasetInfo,
    ModelInfo,
    ResultRecord,
    Setup,
    TaskOutcome,
    build_dataclass,
)
from dfine_bench.records.store import RunStore, new_run_id, safe_id

log = logging.getLogger("dfine_bench")

PAPER_PROTOCOL = "paper_t4"


@dataclass
class RunOutcome:
    """What a finished (or stopped) run left behind."""

    run_dir: Path
    records: list[ResultRecord] = field(default_factory=list)
    report_dir: Path | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


# -- helpers ------------------------------------------------------------------------------
def _value(v: Any) -> Any:
    return v.value if isinstance(v, Enum) else v


def config_hash(config: dict[str, Any]) -> str:
    """Identity of a run's settings (output options excluded), used to find a run to resume."""
    ident = json.loads(json.dumps(config, default=str))
    out = ident.get("output", {})
    for k in ("run_id", "progress", "log_level", "resume", "report_name"):
        out.pop(k, None)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _dist() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from dfine_bench.evaluation.distributed import init_distributed

    return init_distributed()


def _broadcast(obj: Any, world: int) -> Any:
    if world <= 1:
        return obj
    holder = [obj]
    torch.distributed.broadcast_object_list(holder, src=0)
    return holder[0]


def backend_configs(cfg: RunConfig, explicit_groups: set[str]) -> list[BackendConfig]:
    """The backends to profile: the suite's list, unless ``backend=``/``protocol=`` was chosen."""
    names = list(cfg.suite.backends)
    if not names or explicit_groups & {"backend", "protocol"} or cfg.protocol.name == PAPER_PROTOCOL:
        return [cfg.backend]
    out = []
    for name in names:
        if name == _value(cfg.backend.name):
            out.append(cfg.backend)
            continue
        path = suites_dir() / "backend" / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"suite.backends names {name!r}, which has no suites/backend/{name}.yaml")
        schema = OmegaConf.structured(BackendConfig)
        out.append(OmegaConf.to_object(OmegaConf.merge(schema, OmegaConf.load(path))))
    return out


def apply_protocol(cfg: RunConfig) -> RunConfig:
    """Enforce a named protocol's fixed settings (the paper's: batch 1, model only)."""
    if cfg.protocol.name == PAPER_PROTOCOL:
        if cfg.profiling.batch_sizes != [1]:
            log.info("protocol paper_t4: throughput limited to batch size 1 (the paper's protocol)")
        cfg.profiling = replace(cfg.profiling, batch_sizes=[1])
        cfg.profiling.timed = type(cfg.profiling.timed)("model")
    return cfg


def weights_argument(cfg: RunConfig) -> str:
    source = _value(cfg.weights.source)
    if source == WeightsSource.auto.value:
        return "auto"
    if source == WeightsSource.random_init.value:
        return "random-init"
    from dfine_bench.adapters.weights import resolve_weights_arg

    return resolve_weights_arg(source, cfg.weights.path)


# -- the run folder -----------------------------------------------------------------------
def open_run(cfg: RunConfig, chash: str) -> RunStore:
    """Pick the run folder: the given id, else the newest unfinished run of this config, else new."""
    results = Path(cfg.output.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    if cfg.output.run_id:
        store = RunStore(results / safe_id(cfg.output.run_id))
        meta = store.read_meta()
        if meta and not cfg.output.resume:
            raise ConfigError(
                f"output.run_id={cfg.output.run_id}: {store.run_dir} already holds a run; "
                "choose another run id or set output.resume=true to continue it"
            )
        if not store.try_lock():
            raise ConfigError(f"{store.run_dir} is being written by another process; choose another run id")
        return store
    if cfg.output.resume:
        candidates = []
        for meta_file in results.glob("*/run.json"):
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError):
                continue
            if meta.get("config_hash") == chash and meta.get("status") != "complete":
                candidates.append((meta.get("started_at", ""), meta_file.parent))
        for _, run_dir in sorted(candidates, reverse=True):
            store = RunStore(run_dir)
            if store.try_lock():
                log.info("resuming unfinished run %s (same settings)", run_dir.name)
                return store
    while True:
        store = RunStore(results / new_run_id(cfg.suite.name))
        if not store.run_dir.exists() and store.try_lock():
            return store


@contextmanager
def run_log(run_dir: Path, level: str) -> Iterator[None]:
    """Log to the console and to ``<run>/run.log`` for the duration of the run."""
    root = logging.getLogger("dfine_bench")
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


# -- records ------------------------------------------------------------------------------
def model_info(adapter: DetectorAdapter) -> ModelInfo:
    return build_dataclass(ModelInfo, adapter.describe())


def unbuilt_model_info(name: str, weights: str) -> ModelInfo:
    spec = get_spec(name)
    return ModelInfo(
        name=name,
        family=spec.family,
        weights_source=weights,
        random_init=weights in ("random-init", "auto"),
        num_classes=spec.num_classes,
        input_size=list(spec.input_size),
        fdr=spec.fdr,
        fdr_bins=spec.fdr_bins,
        go_lsd=spec.go_lsd,
    )


def make_record(
    outcome: TaskOutcome,
    *,
    run_id: str,
    model: ModelInfo,
    base_setup: Setup,
    environment: dict[str, Any],
) -> ResultRecord:
    setup_fields = {f.name for f in fields(Setup)}
    setup = replace(base_setup, deviations=list(base_setup.deviations), extra=dict(base_setup.extra))
    for k, v in outcome.setup.items():
        if k in setup_fields and k != "extra":
            setattr(setup, k, _value(v))
        else:
            setup.extra[k] = _value(v)
    notes = list(outcome.notes)
    if model.random_init:
        notes.append("random-init weights: these numbers are not the model's accuracy")
    if outcome.dataset is not None and outcome.dataset.generated:
        notes.append("generated stand-in dataset, not COCO: AP here is not comparable with the paper")
    return ResultRecord(
        run_id=run_id,
        record_id=safe_id(outcome.task, model.name, outcome.key),
        task=outcome.task,
        model=model,
        setup=setup,
        environment=environment,
        metrics=outcome.metrics,
        dataset=outcome.dataset,
        status=outcome.status,
        reason=outcome.reason,
        notes=notes,
        details=outcome.details,
    )


# -- the run ------------------------------------------------------------------------------
class SuiteRunner:
    """Runs one composed config; see the module docstring."""

    def __init__(
        self,
        cfg: RunConfig,
        *,
        resolved_config: dict[str, Any],
        explicit_groups: Sequence[str] = (),
        command: Sequence[str] = (),
    ) -> None:
        self.cfg = apply_protocol(cfg)
        self.resolved_config = resolved_config
        self.explicit_groups = set(explicit_groups)
        self.command = list(command)
        self.rank, self.world = _dist()
        self.models = [cfg.model.name] if cfg.model is not None else list(cfg.suite.models)
        if not self.models:
            raise ConfigError(f"suite {cfg.suite.name!r} lists no models: set suite.models or model=<name>")
        for name in self.models:
            get_spec(name)  # unknown names fail before any work, with close matches
        if cfg.suite.claims:
            from dfine_bench.claims import load_claims

            load_claims(cfg.suite.claims)  # a bad claims name or file fails now, not after the run
        if cfg.suite.tolerances:
            from dfine_bench.checks.gate import resolve_tolerances

            # a misspelled tolerance fails at `run`, not later at `check`
            resolve_tolerances([("suite.tolerances", dict(cfg.suite.tolerances))])
        self.backends = backend_configs(self.cfg, self.explicit_groups)
        self._dataset: Any = None
        self.run_id = ""
        self.environment = capture_environment()

    # The dataset is resolved once, lazily (profiling alone may not need it).
    @property
    def dataset(self) -> Any:
        if self._dataset is None:
            from dfine_bench.data import resolve_dataset

            cache = Path(self.cfg.output.results_dir)
            self._dataset = resolve_dataset(self.cfg.dataset, cache)
        return self._dataset

    def needs_dataset(self) -> bool:
        prof = self.cfg.profiling
        return self.cfg.evaluation.enabled or (prof.enabled and _value(prof.input) == "dataset")

    def base_setup(self, backend: BackendConfig | None = None) -> Setup:
        input_size = self.cfg.model.input_size if self.cfg.model and self.cfg.model.input_size else None
        input_size = input_size or self.cfg.suite.input_size
        return Setup(
            device=self.cfg.device,
            device_name=device_name(self.cfg.device),
            dtype=_value(backend.dtype) if backend else "fp32",
            backend=_value(backend.name) if backend else "eager",
            batch_size=self.cfg.evaluation.batch_size,
            input_size=list(input_size) if input_size else None,
            threads=torch.get_num_threads(),
            protocol=self.cfg.protocol.name,
        )

    def units(self, model: str) -> list[str]:
        out = []
        if self.cfg.evaluation.enabled:
            out.append(f"evaluation/{model}")
        if self.cfg.profiling.enabled:
            out.extend(f"profile/{model}/{_value(b.name)}-{_value(b.dtype)}" for b in self.backends)
        return out

    def build(self, name: str) -> DetectorAdapter:
        options: dict[str, Any] = {
            "weights": weights_argument(self.cfg),
            "seed": self.cfg.weights.seed,
            "revision": self.cfg.weights.revision,
            "trust_remote_code": self.cfg.weights.trust_remote_code,
            "device": self.cfg.device,
        }
        if self.cfg.model is not None and self.cfg.model.num_classes is not None:
            options["num_classes"] = self.cfg.model.num_classes
        size = (self.cfg.model.input_size if self.cfg.model else None) or self.cfg.suite.input_size
        if size:
            options["input_size"] = tuple(size)
        adapter = create_model(name, **options)
        return adapter.to(self.cfg.device)

    def run(self) -> RunOutcome:
        cfg = self.cfg
        chash = config_hash(self.resolved_config)
        store = open_run(cfg, chash) if self.rank == 0 else None
        run_id = _broadcast(store.run_id if store else None, self.world)
        self.run_id = run_id
        run_dir = Path(cfg.output.results_dir) / run_id
        outcome = RunOutcome(run_dir=run_dir)
        if store is None:  # other ranks only take part in the evaluations
            self._run_models(None, run_id, outcome)
            return outcome
        meta = store.read_meta()
        done: set[str] = set(meta.get("completed_units", []))
        store.write_meta(
            {
                **meta,
                "run_id": run_id,
                "suite": cfg.suite.name,
                "status": "running",
                "config_hash": chash,
                "config": self.resolved_config,
                "command": self.command,
                "started_at": meta.get("started_at")
                or datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "resumed_at": datetime.now(timezone.utc).isoformat(timespec="seconds") if done else None,
                "completed_units": sorted(done),
                "pid": os.getpid(),
                "world_size": self.world,
            }
        )
        started = time.perf_counter()
        try:
            with run_log(run_dir, cfg.output.log_level):
                log.info(
                    "run %s: suite %s, models %s, device %s", run_id, cfg.suite.name, self.models, cfg.device
                )
                if done:
                    log.info("resuming: %d unit(s) already done: %s", len(done), ", ".join(sorted(done)))
                self._announce_data()
                self._run_models(store, run_id, outcome, done)
                store.update_meta(status="complete", wall_time_s=round(time.perf_counter() - started, 2))
                outcome.records = store.records()
                if cfg.suite.report and outcome.records:
                    try:
                        outcome.report_dir = self._report(outcome.records, run_id)
                    except Exception as exc:  # every record is written: the run stays complete
                        log.exception("the report could not be rendered")
                        store.update_meta(report_error=f"{type(exc).__name__}: {exc}")
                        outcome.failed.append("report")
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            store.update_meta(status=status, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            store.unlock()
        return outcome

    def _announce_data(self) -> None:
        if not self.needs_dataset():
            return
        info: DatasetInfo = self.dataset.info()
        if info.generated:
            log.warning(
                "DATA: generated stand-in dataset (%d images) — no COCO found (set DFINE_BENCH_COCO or "
                "dataset.root); its AP says nothing about any model's accuracy",
                info.num_images or 0,
            )
        else:
            log.info(
                "DATA: %s, %d images, annotations sha256 %s",
                info.name,
                info.num_images or 0,
                (info.annotations_sha256 or "")[:12],
            )

    def _run_models(
        self, store: RunStore | None, run_id: str, outcome: RunOutcome, done: set[str] | None = None
    ) -> None:
        done = _broadcast(done, self.world) or set()
        for name in self.models:
            pending = [u for u in self.units(name) if u not in done]
            if not pending:
                log.info("%s: all tasks already done (resumed)", name)
                continue
            try:
                adapter = self.build(name)
            except (DfineBenchError, OSError, RuntimeError, ValueError, ImportError) as exc:
                if len(self.models) == 1 and isinstance(exc, DfineBenchError):
                    raise
                self._record_unbuildable(store, run_id, name, pending, exc, outcome)
                continue
            if self.rank == 0:
                log.info(
                    "MODEL %s: weights %s, %.2fM params",
                    name,
                    adapter.weights.label,
                    adapter.num_parameters() / 1e6,
                )
                if adapter.weights.is_random_init:
                    log.warning("%s: random-init weights — numbers below are not this model's accuracy", name)
            minfo = model_info(adapter)
            for unit in pending:
                outcomes = self._run_unit(unit, adapter)
                if store is None:
                    continue
                for o in outcomes:
                    setup = self.base_setup(self._backend_of(unit))
                    rec = make_record(
                        o, run_id=run_id, model=minfo, base_setup=setup, environment=self.environment
                    )
                    store.write_record(rec)
                    if rec.status == "failed":
                        outcome.failed.append(rec.record_id)
                        log.error("%s failed: %s", rec.record_id, rec.reason)
                    elif rec.status == "skipped":
                        log.warning("%s skipped: %s", rec.record_id, rec.reason)
                done.add(unit)
                store.update_meta(completed_units=sorted(done))
            del adapter

    def _backend_of(self, unit: str) -> BackendConfig | None:
        if not unit.startswith("profile/"):
            return None
        key = unit.rsplit("/", 1)[1]
        return next(b for b in self.backends if f"{_value(b.name)}-{_value(b.dtype)}" == key)

    def _not_run(self, unit: str, status: str, reason: str) -> list[TaskOutcome]:
        """Outcomes of a unit that did not run, under the record ids its success would have had.

        Same ids as a success, so that `check` reads "ok in the baseline, failed now" (a
        regression) rather than an unknown new record.
        """
        if unit.startswith("evaluation/"):
            engine = str(_value(self.cfg.evaluation.engine))
            return [TaskOutcome(task="evaluation", key=engine, status=status, reason=reason)]
        from dfine_bench.profiling.complexity import complexity_key
        from dfine_bench.profiling.profile import backend_task_keys

        backend = self._backend_of(unit)
        prof = self.cfg.profiling
        keys: list[tuple[str, str]] = []
        if prof.complexity and backend is self.backends[0]:
            keys.append(("complexity", complexity_key(prof.flops_input_size)))
        keys += backend_task_keys(
            unit.rsplit("/", 1)[1], latency=prof.latency, throughput=prof.throughput, trace=prof.trace
        )
        return [TaskOutcome(task=t, key=k, status=status, reason=reason) for t, k in keys]

    def _run_unit(self, unit: str, adapter: DetectorAdapter) -> list[TaskOutcome]:
        try:
            if unit.startswith("evaluation/"):
                return self._evaluate(adapter)
            return self._profile(adapter, self._backend_of(unit))
        except BackendUnavailable as exc:
            return self._not_run(unit, "skipped", str(exc))
        except (KeyboardInterrupt, SystemExit):
            raise
        except DfineBenchError as exc:
            log.error("%s: %s", unit, exc)
            return self._not_run(unit, "failed", str(exc))
        except Exception as exc:  # one broken task must not take the rest of the suite down
            log.exception("%s failed", unit)
            return self._not_run(unit, "failed", f"{type(exc).__name__}: {exc}")

    def _evaluate(self, adapter: DetectorAdapter) -> list[TaskOutcome]:
        from dfine_bench.evaluation import check_label_map, evaluate_model

        check_label_map(adapter, self.dataset)  # before any image is read
        work_dir = Path(self.cfg.output.results_dir) / self.run_id / "predictions" / adapter.spec.name
        result = evaluate_model(
            adapter,
            self.dataset,
            self.cfg.evaluation,
            work_dir,
            device=self.cfg.device,
            progress=self.cfg.output.progress,
        )
        return [result] if result is not None else []

    def _profile(self, adapter: DetectorAdapter, backend: BackendConfig | None) -> list[TaskOutcome]:
        if self.rank != 0 or backend is None:
            return []
        from dfine_bench.profiling import profile_model

        images, images_kind = None, "dataset"
        if _value(self.cfg.profiling.input) == "dataset":
            images = self.dataset.sample_images(8)
            images_kind = "generated" if self.dataset.generated else "dataset"
        first = backend is self.backends[0]
        work_dir = Path(self.cfg.output.results_dir) / self.run_id
        return profile_model(
            adapter,
            self.cfg.profiling,
            backend,
            device=self.cfg.device,
            work_dir=work_dir,
            images=images,
            images_kind=images_kind,
            protocol=self.cfg.protocol,
            include_complexity=first and self.cfg.profiling.complexity,
            progress=self.cfg.output.progress,
        )

    def _record_unbuildable(
        self,
        store: RunStore | None,
        run_id: str,
        name: str,
        pending: list[str],
        exc: BaseException,
        outcome: RunOutcome,
    ) -> None:
        status = "skipped" if isinstance(exc, (BackendUnavailable, ImportError)) else "failed"
        reason = f"could not build {name}: {exc}"
        log.error("%s", reason) if status == "failed" else log.warning("%s", reason)
        if store is None:
            return
        minfo = unbuilt_model_info(name, weights_argument(self.cfg))
        for unit in pending:
            for o in self._not_run(unit, status, reason):
                rec = make_record(
                    o,
                    run_id=run_id,
                    model=minfo,
                    base_setup=self.base_setup(self._backend_of(unit)),
                    environment=self.environment,
                )
                store.write_record(rec)
                if status == "failed":
                    outcome.failed.append(rec.record_id)

    def _report(self, records: list[ResultRecord], run_id: str) -> Path | None:
        from dfine_bench.reporting import build_report

        name = self.cfg.output.report_name or run_id
        out_dir = Path(self.cfg.output.reports_dir) / name
        return build_report(
            records,
            out_dir,
            claims=self.cfg.suite.claims,
            title=f"dfine-bench: suite {self.cfg.suite.name} ({run_id})",
        )


def run_suite(
    cfg: RunConfig,
    *,
    resolved_config: dict[str, Any] | None = None,
    explicit_groups: Sequence[str] = (),
    command: Sequence[str] | None = None,
) -> RunOutcome:
    """Run a composed config (see ``dfine_bench.config.loading.compose_config``)."""
    if resolved_config is None:
        resolved_config = json.loads(
            json.dumps(OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True))
        )
    runner = SuiteRunner(
        cfg,
        resolved_config=resolved_config,
        explicit_groups=explicit_groups,
        command=command if command is not None else sys.argv,
    )
    if runner.world <= 1:
        return runner.run()
    from dfine_bench.evaluation.distributed import shutdown_distributed

    try:
        outcome = runner.run()
    except BaseException:
        shutdown_distributed(wait=False)
        raise
    shutdown_distributed()
    return outcome


__all__ = ["RunOutcome", "SuiteRunner", "run_suite"]
