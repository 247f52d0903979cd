"""The built-in metric definitions: COCO accuracy, complexity, timing, throughput and TIDE.

``builtin_metrics()`` gives them in catalogue order (the order tables show them in), each with the
table its task's metrics go in and the range of values its unit allows; ``dfine_bench.records.metrics``
registers them when it is imported.
"""

from __future__ import annotations

import math
from dataclasses import replace

from dfine_bench.records.metric_def import (
    ABSOLUTE,
    ACCURACY_TABLE,
    COMPLEXITY_TABLE,
    COUNT,
    EXACT,
    INFORMATIONAL,
    LATENCY,
    SPEED_TABLE,
    STAGE_LABELS,
    THROUGHPUT,
    MetricDef,
)

#: COCO's 12 standard stats, in pycocotools' ``stats`` order; stored in percent (paper style).
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_HEADLINE_COCO = ("AP", "AP50", "AP75", "APs", "APm", "APl")

#: What ``params`` counts, stored in complexity records' ``details["params_convention"]``.
PARAMS_CONVENTION = (
    "official tools/benchmark/get_info.py: sum(p.numel()) over the deploy() model (training-only "
    "heads dropped, RepVGG blocks and D-FINE's encoder conv+BN fused, the denoising class embedding kept)"
)

_BUILTIN = (
    *(
        MetricDef(
            n,
            "%",
            True,
            task="evaluation",
            gate=ABSOLUTE,
            tolerance=0.3,
            claim_kind="tolerance",
            label=n,
            headline=n in _HEADLINE_COCO,
            description=f"COCO {n} (x100)",
        )
        for n in COCO_STATS
    ),
    MetricDef(
        "images_seen",
        "count",
        None,
        "evaluation",
        COUNT,
        label="images",
        fmt="{:.0f}",
        description="images evaluated",
    ),
    MetricDef(
        "images_failed",
        "count",
        False,
        "evaluation",
        COUNT,
        label="failed images",
        fmt="{:.0f}",
        description="images that could not be read or run",
    ),
    MetricDef(
        "images_skipped",
        "count",
        False,
        "evaluation",
        COUNT,
        description="images skipped (resumed from disk or filtered)",
    ),
    MetricDef(
        "params",
        "M",
        None,
        "complexity",
        EXACT,
        0.0,
        claim_kind="exact",
        label="params (M)",
        headline=True,
        description=f"parameters, millions: {PARAMS_CONVENTION}",
    ),
    MetricDef(
        "params_total",
        "M",
        None,
        "complexity",
        EXACT,
        0.0,
        label="params total (M)",
        description=(
            "every parameter of the model as built, millions (training-only heads and unfused layers "
            "included)"
        ),
    ),
    MetricDef(
        "gflops",
        "GFLOPs",
        None,
        "complexity",
        EXACT,
        0.0,
        claim_kind="exact",
        label="GFLOPs",
        headline=True,
        description="GFLOPs at the input size, counted like the paper (calflops)",
    ),
    MetricDef(
        "gflops_torch",
        "GFLOPs",
        None,
        "complexity",
        EXACT,
        0.0,
        label="GFLOPs (torch counter)",
        description="GFLOPs by torch.utils.flop_counter (2 per multiply-add)",
    ),
    MetricDef(
        "latency_median",
        "ms",
        False,
        "latency",
        LATENCY,
        0.25,
        claim_kind="hardware",
        label="latency median{bs} (ms)",
        headline=True,
        description="median latency per batch",
    ),
    MetricDef(
        "latency_mean",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        claim_kind="hardware",
        label="latency mean{bs} (ms)",
        description="mean latency per batch (the median is gated)",
    ),
    MetricDef(
        "latency_p90",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        label="latency p90{bs} (ms)",
        headline=True,
        description="90th percentile latency (the median is gated)",
    ),
    MetricDef(
        "latency_p99",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        label="latency p99{bs} (ms)",
        description="99th percentile latency, only with >= 100 samples (the median is gated)",
    ),
    MetricDef(
        "latency_median_ci_low",
        "ms",
        None,
        "latency",
        INFORMATIONAL,
        description="lower end of the median's 95% bootstrap confidence interval (the median is gated)",
    ),
    MetricDef(
        "latency_median_ci_high",
        "ms",
        None,
        "latency",
        INFORMATIONAL,
        description="upper end of the median's 95% bootstrap confidence interval (the median is gated)",
    ),
    MetricDef(
        "latency_iqr", "ms", None, "latency", INFORMATIONAL, description="interquartile range of latency"
    ),
    MetricDef(
        "latency_std", "ms", None, "latency", INFORMATIONAL, description="standard deviation of latency"
    ),
    MetricDef(
        "latency_cv",
        "ratio",
        None,
        "latency",
        INFORMATIONAL,
        label="latency CV{bs}",
        fmt="{:.3f}",
        description="coefficient of variation (std / mean)",
    ),
    MetricDef(
        "fps",
        "img/s",
        True,
        "latency",
        INFORMATIONAL,
        claim_kind="hardware",
        label="FPS{bs} (img/s)",
        headline=True,
        description="images per second from the median latency (the median is gated)",
    ),
    MetricDef(
        "peak_rss",
        "MiB",
        False,
        "latency",
        INFORMATIONAL,
        label="peak RSS{bs} (MiB)",
        fmt="{:.0f}",
        description="peak resident memory of the process",
    ),
    MetricDef(
        "cuda_max_allocated",
        "MiB",
        False,
        "latency",
        INFORMATIONAL,
        label="CUDA peak{bs} (MiB)",
        fmt="{:.0f}",
        description="torch.cuda.max_memory_allocated",
    ),
    MetricDef(
        "cuda_max_reserved",
        "MiB",
        False,
        "latency",
        INFORMATIONAL,
        description="torch.cuda.max_memory_reserved",
    ),
    MetricDef(
        "output_max_abs_diff",
        "abs",
        False,
        "latency",
        INFORMATIONAL,
        label="max |diff| vs eager{bs}",
        fmt="{:.2g}",
        description="max |backend - eager| over outputs on one input (checked when profiling)",
    ),
    MetricDef(
        "harness_overhead",
        "ms",
        None,
        "latency",
        INFORMATIONAL,
        description="time the harness adds around an empty callable",
    ),
    # Time per stage (dfine_bench.profiling.stages): medians of each stage's own samples. They
    # explain the gated latency_median; each is informational (its samples are in the details).
    *(
        MetricDef(
            f"stage_{name}",
            "ms",
            False,
            "latency",
            INFORMATIONAL,
            description=f"median time of the {text} stage alone, batch 1 (latency_median is gated)",
        )
        for name, text in STAGE_LABELS.items()
    ),
    MetricDef(
        "stages_total",
        "ms",
        False,
        "latency",
        INFORMATIONAL,
        label="stages total{bs} (ms)",
        description="sum of the stages the protocol counts (details.stages: which, and which not measured)",
    ),
    MetricDef(
        "throughput",
        "img/s",
        True,
        "throughput",
        THROUGHPUT,
        0.25,
        label="throughput (img/s)",
        headline=True,
        description="best images per second over batch sizes",
    ),
    MetricDef(
        "max_batch_size",
        "count",
        None,
        "throughput",
        INFORMATIONAL,
        label="max batch",
        fmt="{:.0f}",
        description="largest batch size that fit in memory",
    ),
    # Error analysis (dfine_bench.evaluation.error_analysis): TIDE's breakdown of the AP50 a model
    # loses, per error type. Diagnostics that explain the gated COCO AP, not targets of their own.
    MetricDef(
        "tide_AP50",
        "%",
        True,
        "error_analysis",
        INFORMATIONAL,
        label="AP50 (TIDE)",
        description="TIDE's AP at IoU 0.5 (top 100 per image), the base of every dAP (AP50 is gated)",
    ),
    *(
        MetricDef(
            name,
            "%",
            False,
            "error_analysis",
            INFORMATIONAL,
            label=f"dAP {kind}",
            description=f"AP50 gained by fixing every {kind} error (TIDE oracle); explains AP, not gated",
        )
        for name, kind in (
            ("dAP_cls", "classification"),
            ("dAP_loc", "localization"),
            ("dAP_both", "cls+loc"),
            ("dAP_dupl", "duplicate"),
            ("dAP_bkg", "background"),
            ("dAP_miss", "missed"),
            ("dAP_fp", "false positive"),
            ("dAP_fn", "false negative"),
        )
    ),
)

#: Where each built-in task's metrics are shown, and the values each unit can take (a built-in
#: definition that states neither gets these; a plug-in states its own).
_BUILTIN_TABLES = {
    "evaluation": ACCURACY_TABLE,
    "complexity": COMPLEXITY_TABLE,
    "latency": SPEED_TABLE,
    "throughput": SPEED_TABLE,
    "error_analysis": None,  # shown by the report's error-analysis section, not a comparison table
}
_UNIT_RANGES = {"%": ((0.0, 100.0), False), "ms": ((0.0, math.inf), True), "img/s": ((0.0, math.inf), True)}
_NON_NEGATIVE = ((0.0, math.inf), False)  # counts, sizes, GFLOPs, memory, spreads
_SPREADS = ("latency_iqr", "latency_std", "latency_cv")  # zero when every sample is equal


def builtin_metrics() -> list[MetricDef]:
    """The built-in definitions, in catalogue order, each with its task's table and its unit's range."""
    definitions = []
    for d in _BUILTIN:
        valid, positive = _UNIT_RANGES.get(d.unit, _NON_NEGATIVE)
        if d.name in _SPREADS or d.name.startswith("stage_"):
            valid, positive = _NON_NEGATIVE
        definitions.append(replace(d, table=_BUILTIN_TABLES[d.task], valid=valid, positive=positive))
    return definitions
