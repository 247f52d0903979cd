"""The batch-1 latency task of one model on one built backend, with everything that qualifies it.

``measure_latency`` times the call ``timed_call.timed_fn`` gives under the GPU timing discipline
(``time_callable``), reads CPU contention and (on CUDA, through NVML) the GPU's clocks, temperature,
power and throttle reasons around it, judges the measurement (``validity.assess``: stable,
unstable or throttled), and times each stage on its own (``stages``). ``tf32`` sets TF32 for the
whole backend's profiling and says what it was. The result is what the latency record holds:
metrics, details (samples, the validity verdict, the conditions of the measurement in
``timing_discipline``), notes, and the stability ``setup.stability`` carries.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.backends import BackendRunner
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.profiling.gpu_state import NOT_APPLICABLE, GpuWatch
from dfine_bench.profiling.memory import MemoryWatch
from dfine_bench.profiling.stages import add_stages
from dfine_bench.profiling.timed_call import TimingInputs, timed_fn
from dfine_bench.profiling.timing import Measurement, time_callable
from dfine_bench.profiling.validity import ContentionWatch, assess
from dfine_bench.records.schema import Metric

log = logging.getLogger(__name__)


@contextlib.contextmanager
def tf32(device: str, enabled: bool | None) -> Iterator[str | bool]:
    """Set TF32 for CUDA matmuls and cuDNN convolutions (None: leave torch's setting), restoring it
    afterwards; yields what applied (``n/a (cpu)`` on the CPU)."""
    if torch.device(device).type != "cuda":
        yield NOT_APPLICABLE
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if enabled is not None:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield bool(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def time_with_discipline(fn: Callable[[], Any], settings: ProfileSettings, device: str) -> Measurement:
    """``time_callable`` with the ``profiling`` settings' counts and GPU rules."""
    return time_callable(
        fn,
        device=device,
        warmup=settings.warmup,
        iters=settings.iters,
        min_iters=min(settings.min_iters, settings.iters),
        max_time_s=settings.max_time_s,
        warmup_time_s=settings.warmup_time_s,
        min_time_s=settings.min_time_s,
        cuda_graph=settings.cuda_graph,
        spin_wait=settings.spin_wait,
    )


def measure_latency(
    runner: BackendRunner,
    adapter: DetectorAdapter,
    inputs: TimingInputs,
    settings: ProfileSettings,
    *,
    device: str,
    protocol: str,
    tf32_state: str | bool,
) -> tuple[dict[str, Metric], dict[str, Any], list[str], str]:
    """Time one backend at batch 1: ``(metrics, details, notes, stability)``."""
    cuda = torch.device(device).type == "cuda"
    fn = timed_fn(runner, adapter, inputs, settings.timed, 1)
    timed_threads = 1 if cuda else torch.get_num_threads()
    with MemoryWatch(device) as mw, ContentionWatch(threads=timed_threads) as cw, GpuWatch(device) as gw:
        m = time_with_discipline(fn, settings, device)
    validity = assess(
        m.samples_ms,
        cw.contention,
        cv_max=settings.cv_warn,
        max_load_per_core=settings.max_load_per_core,
        max_cpu_wait=settings.max_cpu_wait,
        gpu_slowdown=gw.slowdown,
    )
    metrics = m.to_metrics()
    metrics.update(mw.metrics())
    notes = list(mw.notes)
    if validity.unstable:
        cause = (
            "the GPU slowed itself down"
            if validity.throttled
            else "a noisy machine (other load, frequency scaling)"
        )
        msg = f"latency {validity.summary()}: {cause}; compare medians with care"
        log.warning("%s %s-%s: %s", adapter.spec.name, runner.name, runner.dtype, msg)
        notes.append(msg)
    details: dict[str, Any] = {
        "samples_ms": m.samples_ms,
        "summary": m.summary(),
        "validity": validity.to_dict(),
        "timer": m.timer,
        "warmup": m.warmup,
        "timing_discipline": {
            "min_iters": min(settings.min_iters, settings.iters),
            "iters": settings.iters,
            "max_time_s": settings.max_time_s,
            **m.extra,
            "tf32": tf32_state,
            "gpu_state": gw.state,
        },
        "input": inputs.kind,
        "graph": runner.graph,
        "peak_rss_per_step": mw.per_step,
    }
    if settings.stages:
        images = inputs.images or inputs.image_batches(1)[0]
        add_stages(runner, adapter, images, settings, device, protocol, metrics, details, notes)
    return metrics, details, notes, validity.status
