"""Throughput against batch size: images/s per batch size until memory or the configured cap runs out.

Each batch size is timed like a latency measurement (fewer iterations); running out of
memory ends the sweep and is recorded as the limit (``status="oom"``), not as a crash. On
the CPU, where the kernel's OOM killer would end the process before Python sees an error,
a batch whose projected memory exceeds what is available is not attempted and is recorded
as ``oom`` with the projection as the reason.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from dfine_bench.profiling.memory import available_memory_mib, process_peak_rss_mib
from dfine_bench.profiling.timing import time_callable

log = logging.getLogger(__name__)

#: Fraction of the available memory a projected CPU batch may use before the sweep stops.
CPU_MEMORY_HEADROOM = 0.8

_OOM_MARKERS = (
    "out of memory",
    "failed to allocate",
    "cuda_error_out_of_memory",
    "cudnn_status_alloc_failed",
)


def is_oom(exc: BaseException) -> bool:
    """Whether an exception from torch, onnxruntime or TensorRT means the batch did not fit."""
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return any(m in text for m in _OOM_MARKERS)


@dataclass
class BatchResult:
    batch_size: int
    status: str  # ok | oom | failed
    throughput: float | None = None  # images/s
    latency_median_ms: float | None = None
    reason: str | None = None
    samples_ms: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "throughput": self.throughput,
            "latency_median_ms": self.latency_median_ms,
            "status": self.status,
            "reason": self.reason,
        }


def sweep_sizes(batch_sizes: list[int], max_batch_size: int, *, extend: bool) -> list[int]:
    """The listed sizes (capped at ``max_batch_size``), then, with ``extend``, doublings up to the cap."""
    sizes = sorted({int(b) for b in batch_sizes if 0 < int(b) <= max_batch_size})
    if extend and sizes:
        b = sizes[-1] * 2
        while b <= max_batch_size:
            sizes.append(b)
            b *= 2
    return sizes


def run_sweep(
    make_fn: Callable[[int], Callable[[], Any]],
    sizes: list[int],
    *,
    device: str,
    warmup: int,
    iters: int,
    max_time_s: float,
) -> list[BatchResult]:
    """Time ``make_fn(bs)()`` for each batch size; stops at the first that does not fit."""
    results: list[BatchResult] = []
    cpu = torch.device(device).type == "cpu"
    base_rss = process_peak_rss_mib()
    per_image_mib: float | None = None
    for bs in sizes:
        if cpu and per_image_mib is not None:
            projected = per_image_mib * bs
            available = available_memory_mib()
            if projected > CPU_MEMORY_HEADROOM * available:
                results.append(
                    BatchResult(
                        bs,
                        "oom",
                        reason=(
                            f"projected {projected:.0f} MiB for batch {bs} exceeds "
                            f"{CPU_MEMORY_HEADROOM:.0%} of the {available:.0f} MiB available; not attempted"
                        ),
                    )
                )
                break
        try:
            fn = make_fn(bs)
            m = time_callable(
                fn,
                warmup=warmup,
                iters=iters,
                min_iters=min(iters, 3),
                max_time_s=max_time_s,
                device=device,
                batch_size=bs,
            )
        except Exception as exc:
            fn = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if is_oom(exc):
                log.info("throughput: batch %d does not fit (%s)", bs, str(exc).splitlines()[0][:200])
                results.append(BatchResult(bs, "oom", reason=f"{type(exc).__name__}: {str(exc)[:300]}"))
                break
            results.append(BatchResult(bs, "failed", reason=f"{type(exc).__name__}: {str(exc)[:300]}"))
            break
        results.append(
            BatchResult(bs, "ok", throughput=m.fps, latency_median_ms=m.median, samples_ms=m.samples_ms)
        )
        if cpu:
            grown = max(process_peak_rss_mib() - base_rss, 0.0)
            per_image_mib = max(per_image_mib or 0.0, grown / bs)
        del fn
    return results
