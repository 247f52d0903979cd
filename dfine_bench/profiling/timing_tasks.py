"""The timing tasks of one built backend that passed its output check: trace, latency, throughput.

``profile._profile_backend`` builds and checks the backend; ``timing_tasks`` runs the tasks it asked
for and returns one ``TaskOutcome`` each. A task that raises gives a ``failed`` outcome under the
key a success would have had; the other tasks still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.backends import BackendRunner, BackendSpec, get_backend
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.profiling.latency import measure_latency
from dfine_bench.profiling.throughput import BatchResult, run_sweep
from dfine_bench.profiling.timed_call import TimingInputs, timed_fn
from dfine_bench.profiling.timing import Measurement, harness_overhead
from dfine_bench.profiling.trace import record_trace, trace_dir
from dfine_bench.records.environment import fingerprint
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import TaskOutcome

log = logging.getLogger(__name__)


def backend_key(name: str, dtype: str) -> str:
    """The key of one backend's outcomes (and of the runner's ``profile/<model>/<key>`` unit)."""
    return f"{name}-{dtype}"


def failed_outcome(task: str, key: str, exc: BaseException, setup: dict[str, Any]) -> TaskOutcome:
    """A task that raised: a ``failed`` outcome under the key a success would have had."""
    return TaskOutcome(
        task=task, key=key, status="failed", reason=f"{type(exc).__name__}: {exc}", setup=setup
    )


@dataclass
class CheckedBackend:
    """A built backend that passed its reference check, and the facts its records carry."""

    runner: BackendRunner
    spec: BackendSpec
    diff: float
    check: dict[str, Any]
    graph_note: str | None  # why model+postprocess is not timed in the deploy graph
    tf32_state: str | bool


@dataclass
class _Run:
    """What every timing task of one built backend shares."""

    built: CheckedBackend
    adapter: DetectorAdapter
    settings: ProfileSettings
    inputs: TimingInputs
    device: str
    setup: Callable[..., dict[str, Any]]
    key_base: str
    fp: dict[str, Any]

    @property
    def runner(self) -> BackendRunner:
        return self.built.runner

    @property
    def name(self) -> str:
        return self.adapter.spec.name


def timing_tasks(
    built: CheckedBackend,
    adapter: DetectorAdapter,
    settings: ProfileSettings,
    inputs: TimingInputs,
    device: str,
    work_dir: Path,
    protocol: str,
    setup: Callable[..., dict[str, Any]],
    sizes: list[int],
    task_keys: dict[str, str],
) -> list[TaskOutcome]:
    """The trace, latency and throughput tasks of a built and checked backend."""
    runner = built.runner
    # what decides whether these timings compare with others (checks.fingerprint)
    own = get_backend(runner.name).fingerprint(built.spec.options, runner.info)
    fp = fingerprint(device, backend=runner.name, dtype=runner.dtype, backend_fingerprint=own)
    run = _Run(built, adapter, settings, inputs, device, setup, backend_key(runner.name, runner.dtype), fp)
    outcomes: list[TaskOutcome] = []
    overhead = harness_overhead(device)
    top: list[dict[str, Any]] | None = None
    if "trace" in task_keys:
        top = _trace_task(run, work_dir, outcomes)
    if "latency" in task_keys:
        outcomes.append(_latency_task(run, task_keys["latency"], protocol, overhead, top))
    if "throughput" in task_keys and sizes:
        outcomes.append(_throughput_task(run, sizes))
    return outcomes


def _trace_task(run: _Run, work_dir: Path, outcomes: list[TaskOutcome]) -> list[dict[str, Any]] | None:
    """Record a trace; appends its outcome and returns its top ops (None if it failed)."""
    key_base = run.key_base
    tdir = trace_dir(work_dir, run.name, key_base)
    try:
        fn = timed_fn(run.runner, run.adapter, run.inputs, run.settings.timed, 1)
        path, top = record_trace(
            fn, tdir, worker=f"{run.name}.{key_base}", device=run.device, steps=run.settings.trace_steps
        )
    except Exception as exc:  # a profiler failure must not lose the timings
        log.exception("trace of %s %s failed", run.name, key_base)
        outcomes.append(failed_outcome("trace", key_base, exc, run.setup(1)))
        return None
    details = {
        "trace_dir": str(path),
        "files": sorted(p.name for p in path.glob("*.pt.trace.json*")),
        "top_ops": top,
        "open_with": f"tensorboard --logdir {Path(work_dir) / 'traces'}",
    }
    outcomes.append(TaskOutcome(task="trace", key=key_base, details=details, setup=run.setup(1)))
    return top


def _latency_task(
    run: _Run, key: str, protocol: str, overhead: Measurement, top: list[dict[str, Any]] | None
) -> TaskOutcome:
    """The latency outcome (``failed`` if timing raised)."""
    built, runner = run.built, run.runner
    try:
        metrics, details, notes, stability = measure_latency(
            runner,
            run.adapter,
            run.inputs,
            run.settings,
            device=run.device,
            protocol=protocol,
            tf32_state=built.tf32_state,
        )
    except Exception as exc:  # timing failed: recorded, the other tasks stand
        log.exception("%s %s: latency failed", run.name, run.key_base)
        return failed_outcome("latency", key, exc, run.setup(1))
    metrics["harness_overhead"] = metric("harness_overhead", overhead.median)
    metrics["output_max_abs_diff"] = metric("output_max_abs_diff", built.diff)
    details.update(
        {"harness_overhead": overhead.summary(), "output_check": built.check, "backend_info": runner.info}
    )
    if built.graph_note:
        notes.append(built.graph_note)
    if top is not None:
        details["top_ops"] = top
    return TaskOutcome(
        task="latency",
        key=key,
        metrics=metrics,
        details=details,
        setup=run.setup(1, fingerprint=run.fp, stability=stability, graph=runner.graph),
        notes=notes,
    )


def _throughput_task(run: _Run, sizes: list[int]) -> TaskOutcome:
    """The throughput sweep's outcome (``failed`` if the sweep raised or no batch size ran)."""
    runner, settings, inputs, adapter = run.runner, run.settings, run.inputs, run.adapter
    try:
        results = run_sweep(
            lambda bs: timed_fn(runner, adapter, inputs, settings.timed, bs),
            sizes,
            device=run.device,
            warmup=min(settings.warmup, 2),
            iters=settings.throughput_iters,
            max_time_s=settings.max_time_s,
        )
    except Exception as exc:  # the sweep failed: recorded, the other tasks stand
        log.exception("%s %s: throughput failed", run.name, run.key_base)
        return failed_outcome("throughput", run.key_base, exc, run.setup(1))
    return _throughput_outcome(run, sizes, results)


def _throughput_outcome(run: _Run, sizes: list[int], results: list[BatchResult]) -> TaskOutcome:
    """The throughput outcome of a finished sweep: the best batch size's throughput, all sizes' details."""
    ok = [r for r in results if r.status == "ok"]
    best = max(ok, key=lambda r: r.throughput or 0.0) if ok else None
    best_bs = best.batch_size if best else None
    metrics = {}
    if best is not None:
        metrics["throughput"] = metric("throughput", best.throughput)
        metrics["max_batch_size"] = metric("max_batch_size", max(r.batch_size for r in ok))
    return TaskOutcome(
        task="throughput",
        key=run.key_base,
        metrics=metrics,
        details=_throughput_details(run, results, best_bs),
        setup=run.setup(
            best_bs if best_bs is not None else sizes[0],
            batch_sizes=sizes,
            fingerprint=run.fp,
            graph=run.runner.graph,
        ),
        status="ok" if ok else "failed",
        reason=None if ok else _sweep_failure(results),
    )


def _sweep_failure(results: list[BatchResult]) -> str | None:
    """Why a sweep in which no batch size ran gives no throughput."""
    failed = [r for r in results if r.status == "failed"]
    return failed[0].reason if failed else "no batch size fit in memory"


def _throughput_details(run: _Run, results: list[BatchResult], best_bs: int | None) -> dict[str, Any]:
    """Every batch size's result, the best, the first that ran out of memory, and the sweep's rule."""
    limit = next((r for r in results if r.status == "oom"), None)
    extended = torch.device(run.device).type == "cuda" and len(run.settings.batch_sizes) > 1
    return {
        "by_batch_size": [r.to_dict() for r in results],
        "best_batch_size": best_bs,
        "memory_limit": limit.to_dict() if limit else None,
        "sweep_rule": "listed batch sizes" + (", then doubling up to max_batch_size" if extended else ""),
        "input": run.inputs.kind,
        "backend_info": run.runner.info,
    }
