"""Memory figures of a profiling step: peak resident memory on the CPU, CUDA allocator peaks.

Linux lets a process reset its resident-set high-water mark (``/proc/self/clear_refs``,
value 5), so ``MemoryWatch`` can report the peak of one step rather than of the whole
process; where that is not possible the process-lifetime peak (``ru_maxrss``) is reported
and ``per_step`` says so.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import Metric

_MIB = 1024 * 1024


def _read_vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_vm_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def process_peak_rss_mib() -> float:
    """Peak resident memory of this process since it started (or since the last reset), MiB."""
    hwm = _read_vm_hwm_mib()
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / _MIB if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, kB elsewhere


def available_memory_mib() -> float:
    return psutil.virtual_memory().available / _MIB


@dataclass
class MemoryWatch:
    """``with MemoryWatch(device) as mw: ...`` then ``mw.metrics()``: peaks over the block."""

    device: str = "cpu"
    per_step: bool = False
    peak_rss_mib: float | None = None
    cuda_max_allocated_mib: float | None = None
    cuda_max_reserved_mib: float | None = None
    notes: list[str] = field(default_factory=list)

    def __enter__(self) -> MemoryWatch:
        self.per_step = _reset_vm_hwm()
        if not self.per_step:
            self.notes.append(
                "peak_rss is the process-lifetime peak (the high-water mark could not be reset)"
            )
        if torch.device(self.device).type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_rss_mib = process_peak_rss_mib()
        if torch.device(self.device).type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda_max_allocated_mib = torch.cuda.max_memory_allocated(self.device) / _MIB
            self.cuda_max_reserved_mib = torch.cuda.max_memory_reserved(self.device) / _MIB

    def metrics(self) -> dict[str, Metric]:
        out: dict[str, Metric] = {}
        if self.peak_rss_mib is not None:
            out["peak_rss"] = metric("peak_rss", self.peak_rss_mib)
        if self.cuda_max_allocated_mib is not None:
            out["cuda_max_allocated"] = metric("cuda_max_allocated", self.cuda_max_allocated_mib)
            out["cuda_max_reserved"] = metric("cuda_max_reserved", self.cuda_max_reserved_mib)
        return out
