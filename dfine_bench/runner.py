"""Runs a suite: checked settings -> a run plan -> the executor -> records -> a report.

One call of ``run_suite`` is one run folder ``results/<run-id>/``. The plan
(``execution/plan.py``) lists the units (``evaluation/<model>``, ``profile/<model>/<backend>``)
and the records each writes; the executor (``execution/executor.py``) writes each unit's records
as soon as it finishes and marks it done in ``run.json``, so an interrupted run keeps everything
finished so far and the same command resumes it (failed units run again). A run folder belongs
to one set of settings (``execution/folder.py``): resuming it with others is refused.

Under ``torchrun`` every rank takes part in the evaluations (images are sharded); only rank 0
profiles, writes records and renders the report. This module is the orchestration: what each
task calls (the evaluation loop, ``profile_model``) and the distributed plumbing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from dfine_bench import profiling
from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.adapters.registry import create_model, get_spec
from dfine_bench.adapters.weights import WeightsRequest, weights_request
from dfine_bench.backends import BackendSpec
from dfine_bench.checks.tolerances import resolve_tolerances
from dfine_bench.claims import load_claims
from dfine_bench.config.input_size import check_input_size
from dfine_bench.config.settings import RunSettings
from dfine_bench.data import ResolvedDataset, resolve_dataset
from dfine_bench.errors import ConfigError
from dfine_bench.evaluation import check_label_map, evaluate_model
from dfine_bench.evaluation.distributed import broadcast_object, init_distributed, shutdown_distributed
from dfine_bench.evaluation.inference_backend import resolve_eval_backends
from dfine_bench.evaluation.labelmap import check_label_set
from dfine_bench.evaluation.precision_cells import diagnose_cells
from dfine_bench.execution.executor import Executor, RunOutcome
from dfine_bench.execution.folder import (
    asdict_spec,
    describe_data,
    identity_hash,
    open_run,
    run_identity,
    run_log,
    units_done,
)
from dfine_bench.execution.plan import RunPlan
from dfine_bench.profiling.precision import check_precision_inputs
from dfine_bench.records.build import model_info, unbuilt_model_info
from dfine_bench.records.environment import capture_environment
from dfine_bench.records.protocols import PAPER_PROTOCOL
from dfine_bench.records.schema import DatasetInfo, ModelInfo, ResultRecord, TaskOutcome
from dfine_bench.records.store import RunStore

log = logging.getLogger("dfine_bench")


def weights_argument(settings: RunSettings, model: str | None = None) -> str | WeightsRequest:
    """The ``weights=`` argument of ``create_model`` for ``model``: ``suite.weights`` first (auto,
    random-init or fixture), then the run's weights request, passed on as the request it is."""
    if model is not None and model in settings.suite.model_weights:
        return settings.suite.model_weights[model]
    return weights_request(settings.weights.source, settings.weights.path)


def report_dir(settings: RunSettings, run_id: str) -> Path:
    return settings.output.reports_dir / (settings.output.report_name or run_id)


class SuiteRunner:
    """Runs one set of checked settings; see the module docstring. Its tasks (``build``,
    ``model_info``, ``evaluate``, ``profile``) are what the plan's units run."""

    def __init__(
        self, settings: RunSettings, *, resolved_config: dict[str, Any], command: Sequence[str] = ()
    ) -> None:
        self.settings = settings
        self.resolved_config = resolved_config
        self.command = list(command)
        for name in settings.suite.models:
            spec = get_spec(name)  # unknown names fail before any work, with close matches
            if settings.weights.input_size:  # a size the model cannot run fails now, not mid-run
                check_input_size("model.input_size", spec, settings.weights.input_size)
        if settings.suite.claims:
            load_claims(settings.suite.claims)  # a bad claims name or file fails now, not after the run
        if settings.suite.tolerances:
            # a misspelled tolerance fails at `run`, not later at `check`
            resolve_tolerances([("suite.tolerances", dict(settings.suite.tolerances))])
        named = settings.output.report_name or settings.output.run_id
        if settings.suite.report and named:  # a folder of the user's is refused now, not after the run
            from dfine_bench.reporting.folder import check_report_folder

            check_report_folder(
                settings.output.reports_dir / named,
                option="output.report_name" if settings.output.report_name else "output.run_id",
                fix="choose another output.report_name (or output.run_id), or suite.report=false",
            )
        # reduced precision's bad input (a precision the backend lacks, a calibration split that is
        # the evaluation's, keep_fp32 matching nothing): one line now, before any export
        check_precision_inputs(
            _precision_specs(settings), models=settings.suite.models, dataset=settings.dataset
        )
        self.plan = RunPlan.from_settings(
            settings, build=self.build, describe=self.model_info, evaluate=self.evaluate, profile=self.profile
        )
        self.identity = run_identity(resolved_config, [asdict_spec(b) for b in settings.backends])
        self.rank, self.world = init_distributed()
        self._dataset: ResolvedDataset | None = None
        self.run_id = ""
        self.environment = capture_environment()

    # The dataset is resolved once, lazily (profiling alone may not need it).
    @property
    def dataset(self) -> ResolvedDataset:
        if self._dataset is None:
            self._dataset = resolve_dataset(self.settings.dataset, self.settings.output.results_dir)
        return self._dataset

    def needs_dataset(self) -> bool:
        s = self.settings
        return s.evaluation.enabled or (s.profile.enabled and s.profile.input == "dataset")

    # -- the tasks the plan's units run -----------------------------------------------------
    def model_info(self, model: str, adapter: DetectorAdapter | None) -> ModelInfo:
        if adapter is None:
            weights = weights_argument(self.settings, model)
            source = weights if isinstance(weights, str) else weights.kind
            return unbuilt_model_info(get_spec(model), source)
        return model_info(adapter)

    def build(self, model: str) -> DetectorAdapter:
        s, w = self.settings, self.settings.weights
        options: dict[str, Any] = {
            "weights": weights_argument(s, model),
            "seed": w.seed,
            "revision": w.revision,
            "trust_remote_code": w.trust_remote_code,
            "device": s.device,
        }
        if w.num_classes is not None:
            options["num_classes"] = w.num_classes
        if w.input_size:
            options["input_size"] = tuple(w.input_size)
        adapter = create_model(model, **options).to(s.device)
        if self.rank == 0:
            log.info(
                "MODEL %s: weights %s, %.2fM params",
                model,
                adapter.weights.label,
                adapter.num_parameters() / 1e6,
            )
            if adapter.weights.is_random_init:
                log.warning("%s: random-init weights — numbers below are not this model's accuracy", model)
        return adapter

    def evaluate(self, adapter: DetectorAdapter) -> list[TaskOutcome]:
        s = self.settings
        check_label_map(adapter, self.dataset)  # before any image is read
        run_dir = s.output.results_dir / self.run_id
        outcomes = evaluate_model(
            adapter,
            self.dataset,
            s.evaluation,
            run_dir / "predictions" / adapter.spec.name,
            device=s.device,
            progress=s.output.progress,
            backends=list(s.backends),
            artifacts_dir=run_dir,
        )
        # reduced-precision cells that lost AP or went non-finite: diagnosed, and a keep-fp32 fix verified
        return outcomes + diagnose_cells(
            adapter,
            self.dataset,
            s.evaluation,
            outcomes,
            backends=list(s.backends),
            work_dir=run_dir / "predictions" / adapter.spec.name,
            artifacts_dir=run_dir,
            device=s.device,
            progress=s.output.progress,
        )

    def profile(
        self, adapter: DetectorAdapter, backend: BackendSpec, include_complexity: bool
    ) -> list[TaskOutcome]:
        if self.rank != 0:
            return []
        s = self.settings
        images, images_kind = None, "dataset"
        if s.profile.input == "dataset":
            images = self.dataset.sample_images(s.profile.num_images)
            images_kind = "generated" if self.dataset.generated else "dataset"
        return profiling.profile_model(
            adapter,
            s.profile,
            backend,
            device=s.device,
            work_dir=s.output.results_dir / self.run_id,
            images=images,
            images_kind=images_kind,
            protocol=s.protocol,
            include_complexity=include_complexity,
            progress=s.output.progress,
        )

    # -- the run ---------------------------------------------------------------------------
    def run_all(self) -> RunOutcome:
        s = self.settings
        torch.manual_seed(s.seed)  # any sampling a task does follows the run's seed
        store = open_run(s.output, s.suite.name, self.identity) if self.rank == 0 else None
        self.run_id = broadcast_object(store.run_id if store else "")
        outcome = RunOutcome(run_dir=s.output.results_dir / self.run_id)
        if store is None:  # other ranks only take part in the evaluations
            self._execute(None, set(), outcome)
            return outcome
        done = self._claim_folder(store, outcome)
        started = time.perf_counter()
        try:
            with run_log(outcome.run_dir, s.output.log_level):
                self._run_units(store, done, outcome)
                store.update_meta(status="complete", wall_time_s=round(time.perf_counter() - started, 2))
                outcome.records = store.records()
                self._report_if_asked(store, outcome)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            store.update_meta(status=status, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            store.unlock()
        return outcome

    def _claim_folder(self, store: RunStore, outcome: RunOutcome) -> set[str]:
        """Check the data against what the folder already holds, write the run's meta and return
        the units already done (a resume); the lock is released on any refusal."""
        meta = store.read_meta()
        try:
            data = self._check_data()
        except BaseException:
            store.unlock()
            if {f.name for f in store.run_dir.iterdir()} <= {".lock"}:  # the folder this run just made
                with contextlib.suppress(OSError):
                    (store.run_dir / ".lock").unlink()
                    store.run_dir.rmdir()
            raise
        if meta and meta.get("data") != data:  # same config, other data (e.g. $DFINE_BENCH_COCO changed)
            store.unlock()
            raise ConfigError(
                f"output.run_id={self.run_id}: {outcome.run_dir} holds results on other data "
                f"({describe_data(meta.get('data'))} -> {describe_data(data)}); choose a new run id"
            )
        done = units_done(store, self.plan.units, meta.get("completed_units", []))
        store.write_meta(self._meta(meta, data, done))
        return done

    def _meta(self, meta: dict[str, Any], data: Any, done: set[str]) -> dict[str, Any]:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return {
            **meta,
            "run_id": self.run_id,
            "suite": self.settings.suite.name,
            "status": "running",
            "config_hash": identity_hash(self.identity),
            "identity": self.identity,
            "data": data,
            "config": self.resolved_config,
            "command": self.command,
            "started_at": meta.get("started_at") or now,
            "resumed_at": now if meta else None,
            "completed_units": sorted(done),
            "planned_units": [u.id for u in self.plan.units],
            "pid": os.getpid(),
            "world_size": self.world,
        }

    def _run_units(self, store: RunStore, done: set[str], outcome: RunOutcome) -> None:
        s = self.settings
        log.info(
            "run %s: suite %s, models %s, device %s", self.run_id, s.suite.name, self.plan.models, s.device
        )
        if done:
            log.info("resuming: %d unit(s) already done: %s", len(done), ", ".join(sorted(done)))
        self._announce_data()
        self._execute(store, done, outcome)

    def _report_if_asked(self, store: RunStore, outcome: RunOutcome) -> None:
        if not (self.settings.suite.report and outcome.records):
            return
        try:
            outcome.report_dir = self._report(outcome.records, self.run_id)
        except Exception as exc:  # every record is written: the run stays complete
            log.exception("the report could not be rendered")
            store.update_meta(report_error=f"{type(exc).__name__}: {exc}")
            outcome.failed.append("report")

    def _execute(self, store: RunStore | None, done: set[str], outcome: RunOutcome) -> None:
        done = broadcast_object(done) or set()
        executor = Executor(
            self.plan, store=store, run_id=self.run_id, environment=self.environment, done=done
        )
        executor.run(outcome)

    def _check_data(self) -> dict[str, Any] | None:
        """The data's identity, once its image headers are checked (a size mismatch fails here) and
        every model's head fits its categories by id or by name; before any task runs."""
        data, s = self._data_identity(), self.settings
        if data is not None and s.evaluation.enabled and s.weights.num_classes is None:
            for name in self.plan.models:
                check_label_set(get_spec(name), self.dataset)
        return data

    def _data_identity(self) -> dict[str, Any] | None:
        """The data in use, part of what made the results (None when no dataset is read)."""
        if not self.needs_dataset():
            return None
        info: DatasetInfo = self.dataset.info()
        return {
            "annotations_sha256": info.annotations_sha256,
            "images": info.num_images,
            "images_identity": self.dataset.images_identity(),  # replaced image files: not a resume
        }

    def _announce_data(self) -> None:
        if not self.needs_dataset():
            return
        info: DatasetInfo = self.dataset.info()
        if info.generated:
            log.warning(
                "DATA: generated stand-in dataset (%d images) — no COCO found (set DFINE_BENCH_COCO or "
                "dataset.root); its AP says nothing about any model's accuracy on COCO (the trained "
                "dfine_fixture's AP on it is a held-out fixture number)",
                info.num_images or 0,
            )
        else:
            log.info(
                "DATA: %s, %d images, annotations sha256 %s",
                info.name,
                info.num_images or 0,
                (info.annotations_sha256 or "")[:12],
            )

    def _report(self, records: list[ResultRecord], run_id: str) -> Path | None:
        from dfine_bench.reporting import build_report

        s = self.settings
        return build_report(
            records,
            report_dir(s, run_id),
            claims=s.suite.claims,
            title=f"dfine-bench: suite {s.suite.name} ({run_id})",
        )


def _precision_specs(settings: RunSettings) -> list[tuple[str, BackendSpec]]:
    """(config key, spec) of every backend a run builds: the profiled ones and the evaluated ones."""
    out = [(f"suite.backends[{i}]", b) for i, b in enumerate(settings.backends)]
    if settings.evaluation.enabled:
        evaluated = resolve_eval_backends(settings.evaluation, list(settings.backends))
        out += [(f"evaluation.backends[{i}]", b.spec) for i, b in enumerate(evaluated)]
    return out


def run_suite(
    settings: RunSettings, *, resolved_config: dict[str, Any], command: Sequence[str] | None = None
) -> RunOutcome:
    """Run checked settings (``dfine_bench.config.loading.load_settings``)."""
    if settings.protocol == PAPER_PROTOCOL:
        log.info(
            "protocol %s: batch size 1, the deploy graph (model + postprocessor), one backend (the paper's)",
            PAPER_PROTOCOL,
        )
    runner = SuiteRunner(
        settings, resolved_config=resolved_config, command=command if command is not None else sys.argv
    )
    if runner.world <= 1:
        return runner.run_all()
    try:
        outcome = runner.run_all()
    except BaseException:
        shutdown_distributed(wait=False)
        raise
    shutdown_distributed()
    return outcome


__all__ = ["RunOutcome", "SuiteRunner", "run_suite"]
