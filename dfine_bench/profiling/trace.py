"""``torch.profiler`` traces that TensorBoard's profiler plugin opens, and a top-ops table.

Traces are written with ``torch.profiler.tensorboard_trace_handler`` into
``<work_dir>/traces/<model>/<backend>-<dtype>/``, the layout torch-tb-profiler reads:
``tensorboard --logdir <work_dir>/traces`` lists one run per model and backend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule, tensorboard_trace_handler


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def top_ops(prof: Any, *, cuda: bool, limit: int = 15) -> list[dict[str, Any]]:
    """Operators by self time: name, calls, self time (ms) and share of the total self time."""
    events = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]

    def self_us(e: Any) -> float:
        if cuda:
            return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))
        return float(e.self_cpu_time_total)

    total = sum(self_us(e) for e in events) or 1.0
    rows = sorted(events, key=self_us, reverse=True)[:limit]
    return [
        {
            "op": e.key,
            "calls": int(e.count),
            "self_time_ms": self_us(e) / 1000.0,
            "share": self_us(e) / total,
            "clock": "device" if cuda else "cpu",
        }
        for e in rows
    ]


def record_trace(
    fn: Callable[[], Any],
    out_dir: Path,
    *,
    worker: str,
    device: str,
    steps: int = 5,
    warmup_steps: int = 1,
) -> tuple[Path, list[dict[str, Any]]]:
    """Profile ``steps`` calls of ``fn`` (after ``warmup_steps``) into ``out_dir``; returns it and top ops."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(
        activities=activities,
        schedule=schedule(wait=0, warmup=warmup_steps, active=max(1, steps), repeat=1),
        on_trace_ready=tensorboard_trace_handler(str(out_dir), worker_name=_safe(worker)),
        record_shapes=True,
        profile_memory=True,
        with_stack=False,
    ) as prof:
        for _ in range(warmup_steps + max(1, steps)):
            # a named range per call: backends torch cannot see into (onnxruntime, TensorRT)
            # still show up in the trace and the top-ops table as one block
            with record_function(f"call:{worker}"):
                fn()
            if cuda:
                torch.cuda.synchronize(device)
            prof.step()
    return out_dir, top_ops(prof, cuda=cuda)


def trace_dir(work_dir: Path, model: str, backend_key: str) -> Path:
    return Path(work_dir) / "traces" / _safe(model) / _safe(backend_key)
