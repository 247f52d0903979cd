"""The notes under each comparison table: units, what was measured how, instability, deviations."""

from __future__ import annotations

from collections.abc import Iterable

from dfine_bench.records.deviations import read_deviations
from dfine_bench.records.metrics import ACCURACY_TABLE as ACCURACY
from dfine_bench.records.metrics import COMPLEXITY_TABLE as COMPLEXITY
from dfine_bench.records.metrics import SPEED_TABLE as SPEED
from dfine_bench.records.metrics import get_metric, list_metrics
from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels
from dfine_bench.reporting.table_groups import Group


def table_notes(group: Group, records: list[ResultRecord]) -> list[str]:
    """The notes of one table: what its numbers are, unstable latencies, deviations from the paper."""
    return [*_kind_notes(group, records), *_unstable_notes(records), *_deviation_notes(records)]


def _kind_notes(group: Group, records: list[ResultRecord]) -> list[str]:
    """Units and conditions, per kind of table."""
    if group.kind == ACCURACY:
        engine = records[0].setup.engine
        devices = sorted({labels.setup_label(r.setup) for r in records})
        return [
            "COCO AP/AR in percent (IoU .50:.95 unless named), maxDets 100",
            *([f"COCO engine: {engine}"] if engine else []),
            f"evaluated on {'; '.join(devices)}",
        ]
    if group.kind == COMPLEXITY:
        return [
            "params in millions, counted as the official get_info.py does (the deploy-mode model); "
            "params total: every parameter of the model as built; GFLOPs of one forward at batch 1 "
            "(calflops, as the paper)"
        ]
    if group.kind != SPEED:  # a component's own table: what its metrics are
        return _metric_notes(records)
    timed = sorted({r.setup.timed for r in records if r.setup.timed})
    sizes = sorted({labels.input_label(r.setup.input_size) or "?" for r in records})
    return [
        f"measured on {group.device_name} with {group.backend} {group.dtype}; input {', '.join(sizes)}; "
        f"timed: {', '.join(timed) or 'unknown'}; latency per batch in ms"
    ]


def _unstable_notes(records: list[ResultRecord]) -> list[str]:
    """Models whose latency ``profiling.validity`` marked unstable (a high CV, an oversubscribed
    CPU or a throttling GPU)."""
    unstable = sorted(
        {
            r.model.name
            for r in records
            if r.task == "latency" and (r.details.get("validity") or {}).get("status") == "unstable"
        }
    )
    if not unstable:
        return []
    return [
        f"UNSTABLE latency (noisy or oversubscribed machine, or a throttling GPU; not judged by claims): "
        f"{', '.join(unstable)}"
    ]


def _deviation_notes(records: list[ResultRecord]) -> list[str]:
    """How the records deviate from the paper's protocol. A throughput record's setup is its best
    batch size: its "batch size N, not 1" belongs to the throughput columns, never to the batch-1
    latency columns beside them."""
    notes = []
    own = [r for r in records if r.task != "throughput"]
    deviations = _deviations(own)
    if deviations:
        notes.append("deviations from the paper's protocol: " + "; ".join(deviations))
    throughput = [
        d for d in _deviations([r for r in records if r.task == "throughput"]) if d not in deviations
    ]
    if throughput:
        head = "throughput, at each model's best batch size (column 'best batch'), "
        head += "also deviates: " if own else "deviates from the paper's protocol: "
        notes.append(head + "; ".join(throughput))
    return notes


def _metric_notes(records: list[ResultRecord]) -> list[str]:
    """What each metric of a component's table means (its catalogue description)."""
    tasks = dict.fromkeys(r.task for r in records)
    defs = [get_metric(n) for t in tasks for n in list_metrics(task=t)]
    return [f"{d.column_label()}: {d.description}" for d in defs if d.label is not None and d.description]


def _deviations(records: Iterable[ResultRecord]) -> list[str]:
    """Every deviation the records list (its text), each once, in first-seen order."""
    return list(dict.fromkeys(d.text for r in records for d in read_deviations(r.setup.deviations)))


__all__ = ["table_notes"]
