"""``profile_model``: every profiling task for one model and one backend, as ``TaskOutcome``s.

Order: complexity (params, GFLOPs) -> backend build (ONNX export, engine; of the deploy graph
when ``timed=model+postprocess``, ``timed_call.graph_for``) -> output check against eager (TF32 as
``profiling.tf32`` says from here on) -> trace -> latency (``latency.measure_latency``: the timing
discipline, validity, stages) -> throughput sweep (the last three: ``timing_tasks``).
A backend this machine cannot run gives ``skipped`` outcomes with the reason; a failed ONNX
export or a backend whose outputs disagree with eager gives ``failed`` outcomes; the other
tasks still run and are returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.backends import BackendSpec, build_backend, check_backend, resolve_backend
from dfine_bench.backends.export.onnx import OnnxExportError
from dfine_bench.config.schema import BackendConfig
from dfine_bench.config.settings import ProfileSettings, check_device_name
from dfine_bench.errors import BackendUnavailable
from dfine_bench.profiling.complexity import complexity, complexity_key
from dfine_bench.profiling.latency import tf32
from dfine_bench.profiling.protocols import PAPER_PROTOCOL, deviations_from_paper, on_reference_device
from dfine_bench.profiling.throughput import sweep_sizes
from dfine_bench.profiling.timed_call import TimingInputs, graph_for, reference_check
from dfine_bench.profiling.timing_tasks import CheckedBackend, timing_tasks
from dfine_bench.profiling.timing_tasks import backend_key as backend_key
from dfine_bench.profiling.timing_tasks import failed_outcome as _failed
from dfine_bench.records.environment import device_name as _device_name
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import TaskOutcome
from dfine_bench.utils.progress import Progress

log = logging.getLogger(__name__)


def backend_task_keys(key: str, *, latency: bool, throughput: bool, trace: bool) -> list[tuple[str, str]]:
    """``(task, outcome key)`` of the timing tasks one backend runs. A task that could not run is
    recorded under the same key, so a baseline's "ok" meets today's "failed" under one record id."""
    keys = [("latency", f"{key}-bs1")] if latency else []
    if throughput:
        keys.append(("throughput", key))
    if trace:
        keys.append(("trace", key))
    return keys


def profile_model(
    adapter: DetectorAdapter,
    settings: ProfileSettings,
    backend: BackendSpec | BackendConfig,
    *,
    device: str,
    work_dir: Path,
    images: list[np.ndarray] | None = None,
    images_kind: str = "dataset",
    protocol: str = "custom",
    include_complexity: bool = True,
    progress: str | bool = "auto",
) -> list[TaskOutcome]:
    """Profile one model on one backend; returns complexity, latency, throughput and trace outcomes.

    ``settings`` are the checked ``profiling`` settings (``config.settings.ProfileSettings``),
    ``backend`` a spec resolved against the backend registry (a ``BackendConfig`` is resolved
    here), ``protocol`` the protocol's name. Unknown backend/dtype/device names raise a
    ``DfineBenchError``; what this machine cannot run gives ``skipped`` outcomes.
    """
    work_dir = Path(work_dir)
    spec = resolve_backend(backend)
    check_device_name(device)
    name, dtype, timed = spec.name, spec.dtype, settings.timed
    protocol_name = protocol
    key_base = backend_key(name, dtype)
    height, width = adapter.spec.input_size
    input_size = (int(height), int(width))
    flops_size = settings.flops_size(input_size)  # the model's own size unless the user set one

    old_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    threads = torch.get_num_threads()
    dev_name = (
        _device_name(device) if torch.device(device).type == "cpu" or torch.cuda.is_available() else device
    )
    inputs = TimingInputs(adapter, input_size, images, images_kind, seed=settings.seed)

    def setup(batch_size: int, **extra: Any) -> dict[str, Any]:
        s: dict[str, Any] = {
            "device": device,
            "device_name": dev_name,
            "backend": name,
            "dtype": dtype,
            "batch_size": batch_size,
            "input_size": list(input_size),
            "timed": timed,
            "threads": threads if torch.device(device).type == "cpu" else None,
            "protocol": protocol_name,
            "deviations": deviations_from_paper(
                dev_name, name, dtype, batch_size, input_size, timed, inputs.kind, graph=extra.get("graph")
            ),
        }
        s["extra"] = extra  # what Setup has no field for (fingerprint, stability, graph, ...), kept as given
        return s

    outcomes: list[TaskOutcome] = []
    progress_bar = Progress(None, f"profile {adapter.spec.name} {key_base}", unit="task", enabled=progress)
    try:
        with progress_bar:
            if include_complexity and settings.complexity:
                adapter.to(device, torch.float32)
                log.info("%s: counting params and GFLOPs at %s", adapter.spec.name, flops_size)
                try:
                    c = complexity(adapter, flops_size)
                except Exception as exc:  # counting failed: recorded, the timings still run
                    log.exception("%s: counting params and GFLOPs failed", adapter.spec.name)
                    c = _failed("complexity", complexity_key(flops_size), exc, {})
                c.setup.update({"device": device, "device_name": dev_name, "protocol": protocol_name})
                outcomes.append(c)
                progress_bar.update()
            outcomes.extend(
                _profile_backend(adapter, settings, spec, device, work_dir, inputs, setup, protocol_name)
            )
            progress_bar.update()
    finally:
        torch.set_num_threads(old_threads)
    if protocol_name == PAPER_PROTOCOL and not on_reference_device(dev_name):
        for o in outcomes:
            if o.task == "latency":
                o.notes.append(
                    f"protocol {PAPER_PROTOCOL} ran on {dev_name}: "
                    "not comparable with the paper's T4 latencies"
                )
    return outcomes


def _profile_backend(
    adapter: DetectorAdapter,
    settings: ProfileSettings,
    backend: BackendSpec,
    device: str,
    work_dir: Path,
    inputs: TimingInputs,
    setup: Callable[..., dict[str, Any]],
    protocol: str = "custom",
) -> list[TaskOutcome]:
    key_base = backend_key(backend.name, backend.dtype)
    timed = settings.timed
    want_latency, want_throughput, want_trace = settings.latency, settings.throughput, settings.trace
    if not (want_latency or want_throughput or want_trace):
        return []
    batch_sizes = list(settings.batch_sizes)
    max_bs = settings.max_batch_size
    cuda = torch.device(device).type == "cuda"
    sizes = sweep_sizes(batch_sizes, max_bs, extend=cuda and len(batch_sizes) > 1)

    task_keys = dict(
        backend_task_keys(key_base, latency=want_latency, throughput=want_throughput, trace=want_trace)
    )

    def not_run(status: str, reason: str, details: dict[str, Any] | None = None) -> list[TaskOutcome]:
        return [
            TaskOutcome(
                task=t, key=k, status=status, reason=reason, details=dict(details or {}), setup=setup(1)
            )
            for t, k in task_keys.items()
        ]

    graph, graph_note = graph_for(adapter, backend, timed)
    try:
        check_backend(backend, device)
        log.info("%s: building backend %s (%s graph)", adapter.spec.name, key_base, graph)
        from dfine_bench.profiling.precision import calibration_for

        runner = build_backend(
            adapter,
            backend,
            device=device,
            work_dir=work_dir,
            input_size=inputs.input_size,
            max_batch_size=max(sizes or [1]),
            threads=torch.get_num_threads() if not cuda else None,
            graph=graph,
            calibration=calibration_for(adapter, backend, work_dir),
        )
    except BackendUnavailable as exc:
        log.warning("%s %s skipped: %s", adapter.spec.name, key_base, exc)
        return not_run("skipped", str(exc))
    except OnnxExportError as exc:
        log.error("%s %s: %s", adapter.spec.name, key_base, exc)
        return not_run("failed", str(exc), {"onnx_failed_op": exc.op, "onnx_errors": exc.errors})
    except Exception as exc:  # a backend that breaks on this model: recorded, the suite goes on
        log.exception("%s %s: building the backend failed", adapter.spec.name, key_base)
        return not_run("failed", f"building {key_base} failed: {type(exc).__name__}: {exc}")

    with tf32(device, settings.tf32) as tf32_state:
        try:  # the first call of a backend (torch.compile compiles here) can fail too
            diff, check, failure = reference_check(runner, adapter, inputs, backend.atol)
        except Exception as exc:
            log.exception("%s %s: the first call failed", adapter.spec.name, key_base)
            return not_run("failed", f"{key_base} failed on its first call: {type(exc).__name__}: {exc}")
        if failure is not None:
            reason = (
                f"{key_base} {failure}; timings of a backend that computes something else do not count "
                "(raise backend.atol if expected)"
            )
            out = not_run("failed", reason, {"output_check": check, "backend_info": runner.info})
            for o in out:
                o.metrics["output_max_abs_diff"] = metric("output_max_abs_diff", diff)
            return out
        built = CheckedBackend(runner, backend, diff, check, graph_note, tf32_state)
        return timing_tasks(
            built, adapter, settings, inputs, device, work_dir, protocol, setup, sizes, task_keys
        )
