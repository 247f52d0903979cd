"""Time per stage: decode, preprocess, host->device, forward, device->host, postprocess.

Each stage is timed on its own, with its own samples (``time_callable``), so a record says where
the time of a detection goes (RT-DETR#211: 0.82 ms of 6.05 ms was the host-to-device copy). What a
protocol counts is a choice of stages (``STAGE_PROTOCOLS``):

* ``paper_t4``: forward + postprocess in the engine, the input already on the device;
* ``end_to_end``: decode -> postprocess, summed from each stage's mean over the images, as
  leaderboards measure (a stage's mean is its expected cost per image);
* ``model_only``: the forward pass alone.

A stage this backend or device does not have is ``not measured`` with the reason (no host-to-device
copy on the CPU; a backend that hands back host arrays copies inside its forward), never 0. A
backend running the deploy graph (``profiling.timed=model+postprocess``) has its postprocessor
inside forward: that stage is "in forward", timed there. The protocol's total is over the stages
that were measured, and names the ones that were not.

Decode times PIL decoding the image from an in-memory JPEG (quality 95) of the input image, so disk
speed is not part of it; preprocess is the adapter's own (resize, normalise, collate).
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dfine_bench.profiling.timed_call import graph_inputs
from dfine_bench.profiling.timing import Measurement, synchronize, time_callable
from dfine_bench.records.metrics import STAGES, metric
from dfine_bench.records.schema import Metric

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter
    from dfine_bench.backends import BackendRunner
    from dfine_bench.config.settings import ProfileSettings

#: protocol -> the stages it counts, and the statistic it sums.
STAGE_PROTOCOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "paper_t4": (("forward", "postprocess"), "median"),
    "end_to_end": (STAGES, "mean"),
    "model_only": (("forward",), "median"),
}
#: ``profiling.timed`` -> the stage protocol of a run whose protocol names none (``custom``).
_BY_TIMED = {"model": "model_only", "model+postprocess": "paper_t4", "end-to-end": "end_to_end"}
NOT_MEASURED = "not measured"
log = logging.getLogger(__name__)


def stage_protocol(protocol: str, timed: str) -> str:
    """The stage protocol of a run: its own name when it is one, else the one ``timed`` implies."""
    return protocol if protocol in STAGE_PROTOCOLS else _BY_TIMED.get(timed, "model_only")


@dataclass
class StageTiming:
    """One stage: its measurement, or why it has none; ``included_in`` names the stage whose
    timing holds it (the deploy graph's postprocessor runs inside its forward)."""

    name: str
    measurement: Measurement | None = None
    reason: str | None = None
    included_in: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.included_in is not None:
            return {"status": f"in {self.included_in}", "reason": self.reason}
        if self.measurement is None:
            return {"status": NOT_MEASURED, "reason": self.reason}
        m = self.measurement
        return {"status": "ok", "samples_ms": m.samples_ms, "summary": m.summary(), "timer": m.timer}


def _jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _cycle(items: Sequence[Any]) -> Callable[[], Any]:
    it = itertools.cycle(items)
    return lambda: next(it)


def _on_cuda(out: Sequence[Any]) -> bool:
    return any(isinstance(t, torch.Tensor) and t.device.type == "cuda" for t in out)


def time_stages(
    runner: BackendRunner,
    adapter: DetectorAdapter,
    images: Sequence[np.ndarray],
    *,
    device: str,
    warmup: int,
    iters: int,
    min_iters: int,
    max_time_s: float,
    warmup_time_s: float = 0.0,
    min_time_s: float = 0.0,
) -> dict[str, StageTiming]:
    """Time every stage of batch-1 inference on ``images`` (cycled); see the module docstring.

    ``warmup_time_s``/``min_time_s`` are the GPU rules for the device stages (``time_callable``)."""
    cuda = torch.device(device).type == "cuda"
    kw: dict[str, Any] = {"warmup": warmup, "iters": iters, "min_iters": min(min_iters, iters)}
    kw["max_time_s"] = max_time_s
    out: dict[str, StageTiming] = {}

    def host(fn: Callable[[], Any]) -> Measurement:
        return time_callable(fn, device="cpu", **kw)

    def dev(fn: Callable[[], Any]) -> Measurement:
        return time_callable(fn, device=device, warmup_time_s=warmup_time_s, min_time_s=min_time_s, **kw)

    encoded = [_jpeg(im) for im in images]
    next_jpeg = _cycle(encoded)
    out["decode"] = StageTiming("decode", host(lambda: _decode(next_jpeg())))

    next_image = _cycle(images)
    out["preprocess"] = StageTiming("preprocess", host(lambda: adapter.preprocess([next_image()])))

    pre = [adapter.preprocess([im]) for im in images]
    host_inputs = [
        (graph_inputs(runner, p.pixel_values.float().cpu(), p.original_sizes), p.original_sizes) for p in pre
    ]
    if cuda:
        next_host = _cycle([x for x, _ in host_inputs])
        out["h2d"] = StageTiming("h2d", dev(lambda: runner.prepare(*next_host())))
    else:
        out["h2d"] = StageTiming("h2d", reason="device cpu: the input is already in host memory, no copy")

    prepared = [(runner.prepare(*x), sizes) for x, sizes in host_inputs]
    synchronize(device)
    next_native = _cycle([n for n, _ in prepared])
    out["forward"] = StageTiming("forward", dev(lambda: runner.call(next_native())))

    results = [(runner.to_torch(runner.call(n)), sizes) for n, sizes in prepared]
    synchronize(device)
    if not cuda:
        out["d2h"] = StageTiming("d2h", reason="device cpu: the outputs are already in host memory, no copy")
    elif not _on_cuda(results[0][0]):
        out["d2h"] = StageTiming(
            "d2h", reason=f"{runner.name} returns host arrays: its copy back is inside forward"
        )
    else:
        next_out = _cycle([o for o, _ in results])
        out["d2h"] = StageTiming("d2h", dev(lambda: [t.cpu() for t in next_out()]))

    if runner.graph == "deploy":
        out["postprocess"] = StageTiming(
            "postprocess",
            reason="the deploy graph runs the postprocessor inside its forward",
            included_in="forward",
        )
        return out
    next_result = _cycle(results)

    def postprocess() -> Any:
        raw, sizes = next_result()
        return adapter.postprocess(adapter.outputs_from_tuple(raw), sizes)

    out["postprocess"] = StageTiming("postprocess", dev(postprocess))
    return out


def stage_metrics(stages: dict[str, StageTiming], protocol: str) -> tuple[dict[str, Metric], dict[str, Any]]:
    """The ``stage_*`` metrics (medians, ms) and ``stages_total`` for ``protocol``, and the details
    block (every stage's samples or reason, what the total counts and what it could not)."""
    counted, stat = STAGE_PROTOCOLS[protocol]
    metrics = _stage_medians(stages)
    measured, included, missing = _counted_by_state(stages, counted)
    total = sum(getattr(stages[s].measurement, stat) for s in measured) if measured else None
    if total is not None:
        metrics["stages_total"] = metric("stages_total", total)
    details = {
        "protocol": protocol,
        "counted": list(counted),
        "statistic": stat,
        "not_measured": missing,
        "included_in_another": {s: stages[s].included_in for s in included},
        "total_ms": total,
        "by_stage": {name: st.to_dict() for name, st in stages.items()},
        "decode_source": "in-memory JPEG (quality 95) of each input image, decoded by PIL",
    }
    return metrics, details


def _stage_medians(stages: dict[str, StageTiming]) -> dict[str, Metric]:
    """A ``stage_<name>`` metric (the median, ms) for each stage that was measured."""
    metrics: dict[str, Metric] = {}
    for name, st in stages.items():
        if st.measurement is not None:
            metrics[f"stage_{name}"] = metric(f"stage_{name}", st.measurement.median)
    return metrics


def _counted_by_state(
    stages: dict[str, StageTiming], counted: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """The protocol's stages split three ways: measured, timed inside another stage, neither."""
    measured = [s for s in counted if stages.get(s) and stages[s].measurement is not None]
    included = [s for s in counted if stages.get(s) and stages[s].included_in is not None]
    missing = [s for s in counted if s not in measured and s not in included]
    return measured, included, missing


def add_stages(
    runner: BackendRunner,
    adapter: DetectorAdapter,
    images: Sequence[np.ndarray],
    settings: ProfileSettings,
    device: str,
    protocol: str,
    metrics: dict[str, Metric],
    details: dict[str, Any],
    notes: list[str],
) -> None:
    """Time each stage (``profiling.stages``) into a latency outcome's metrics and details; a stage
    timing that fails leaves the main latency standing, with a note."""
    iters = max(settings.stage_iters, len(images))
    try:
        stages = time_stages(
            runner,
            adapter,
            images,
            device=device,
            warmup=min(settings.warmup, 3),
            # every image at least once: a stage's mean is over the images, as end_to_end promises
            iters=iters,
            min_iters=min(max(settings.min_iters, len(images)), iters),
            max_time_s=settings.max_time_s / 4,
            # a quarter of the latency's budget and minimum per stage: six stages share the time
            warmup_time_s=settings.warmup_time_s,
            min_time_s=min(settings.min_time_s, settings.max_time_s) / 4,
        )
    except Exception as exc:
        log.exception("%s %s: timing the stages failed", adapter.spec.name, runner.name)
        notes.append(f"stages not timed: {type(exc).__name__}: {exc}")
        return
    stage_m, stage_d = stage_metrics(stages, stage_protocol(protocol, settings.timed))
    stage_d["images"] = len(images)
    metrics.update(stage_m)
    details["stages"] = stage_d
