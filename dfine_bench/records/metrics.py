"""Names, units and directions of the metrics records carry, shared by every producer and consumer.

Producers (evaluation, profiling) write metrics under these names; reports and
regression checks read them. A producer may add metrics not listed here (they are
kept and shown), but the ones listed must use these names and units.
"""

from __future__ import annotations

from dataclasses import dataclass

from dfine_bench.records.schema import Metric


@dataclass(frozen=True)
class MetricDef:
    name: str
    unit: str
    higher_is_better: bool | None
    description: str


#: COCO's 12 standard stats, in pycocotools' ``stats`` order; stored in percent (paper style).
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

_DEFS = [
    *(MetricDef(n, "%", True, f"COCO {n} (x100)") for n in COCO_STATS),
    MetricDef("params", "M", None, "parameters, millions"),
    MetricDef("gflops", "GFLOPs", None, "GFLOPs at the input size, counted like the paper (calflops)"),
    MetricDef("gflops_torch", "GFLOPs", None, "GFLOPs by torch.utils.flop_counter (2 per multiply-add)"),
    MetricDef("latency_median", "ms", False, "median latency per batch"),
    MetricDef("latency_mean", "ms", False, "mean latency per batch"),
    MetricDef("latency_p90", "ms", False, "90th percentile latency"),
    MetricDef("latency_p99", "ms", False, "99th percentile latency"),
    MetricDef("latency_iqr", "ms", None, "interquartile range of latency"),
    MetricDef("latency_std", "ms", None, "standard deviation of latency"),
    MetricDef("latency_cv", "ratio", None, "coefficient of variation (std / mean)"),
    MetricDef("fps", "img/s", True, "images per second from the median latency"),
    MetricDef("harness_overhead", "ms", None, "time the harness adds around an empty callable"),
    MetricDef("throughput", "img/s", True, "best images per second over batch sizes"),
    MetricDef("max_batch_size", "count", None, "largest batch size that fit in memory"),
    MetricDef("peak_rss", "MiB", False, "peak resident memory of the process"),
    MetricDef("cuda_max_allocated", "MiB", False, "torch.cuda.max_memory_allocated"),
    MetricDef("cuda_max_reserved", "MiB", False, "torch.cuda.max_memory_reserved"),
    MetricDef("images_seen", "count", None, "images evaluated"),
    MetricDef("images_failed", "count", False, "images that could not be read or run"),
    MetricDef("images_skipped", "count", False, "images skipped (resumed from disk or filtered)"),
    MetricDef("output_max_abs_diff", "abs", False, "max |backend - eager| over outputs on one input"),
]

METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}


def metric(name: str, value: float | int | None, unit: str | None = None) -> Metric:
    """A ``Metric`` with the unit and direction of its catalogue entry (or the given unit)."""
    d = METRICS.get(name)
    if d is None:
        return Metric(value=None if value is None else float(value), unit=unit or "")
    return Metric(
        value=None if value is None else float(value),
        unit=unit or d.unit,
        higher_is_better=d.higher_is_better,
    )
