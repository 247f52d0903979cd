"""How comparison tables group records: one table per set of conditions, each with a unique label.

A record's group is the conditions its numbers were measured under (``group_of``): for accuracy
the dataset, annotation hash, size, COCO engine and the evaluation's backend and precision; for
complexity the input size; for speed the device name, backend, dtype, input size and timed mode;
a component's own task (``kind_of_task``) gets its own table per dataset, backend and precision.
``label_groups`` names each group in words, adding conditions only where labels would clash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dfine_bench.records.metrics import ACCURACY_TABLE as ACCURACY
from dfine_bench.records.metrics import COMPLEXITY_TABLE as COMPLEXITY
from dfine_bench.records.metrics import SPEED_TABLE as SPEED
from dfine_bench.records.metrics import get_metric, list_metrics
from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels

#: The setup every AP is referred to: the model run by PyTorch in fp32 (``evaluation.backends``'
#: ``eager-fp32``, whose records keep their plain ids).
REFERENCE_BACKEND, REFERENCE_DTYPE = "eager", "fp32"


def is_reference_setup(backend: str | None, dtype: str | None) -> bool:
    """Whether (backend, dtype) is the reference eager fp32 an AP is measured with by default."""
    return (backend or REFERENCE_BACKEND, dtype or REFERENCE_DTYPE) == (REFERENCE_BACKEND, REFERENCE_DTYPE)


@dataclass(frozen=True)
class Group:
    """The conditions shared by one block of columns (one per-conditions table)."""

    kind: str  # accuracy | complexity | speed
    label: str  # unique, shown as the column block's header and the table's title
    key: tuple[Any, ...]
    device_name: str | None = None
    backend: str | None = None
    dtype: str | None = None


def kind_of_task() -> dict[str, str]:
    """The table each task's records go in, as its metrics declare (``MetricDef.table``): the
    built-in tasks' accuracy, complexity and speed tables, and a table of its own for a task a
    component added (an evaluator's); a task whose metrics declare no table has none."""
    out: dict[str, str] = {}
    for name in list_metrics():
        d = get_metric(name)
        if d.table:
            out.setdefault(d.task, d.table)
    return out


def group_of(record: ResultRecord) -> tuple[str, tuple[Any, ...]] | None:
    s = record.setup
    if record.task == "evaluation":
        d = record.dataset
        key = (
            d.name if d else None,
            d.annotations_sha256 if d else None,
            d.subset or d.num_images if d else None,
            bool(d and d.generated),
            s.engine,
            # AP through another backend or precision (``evaluation.backends``) is its own block:
            # eager fp32 and onnxruntime AP of one model must never fill one column
            s.backend,
            s.dtype,
        )
        return ACCURACY, key
    if record.task == "complexity":
        shape = record.details.get("input_shape")
        size = list(shape[-2:]) if isinstance(shape, list) and len(shape) >= 2 else s.input_size
        return COMPLEXITY, (labels.input_label(size),)
    if record.task in ("latency", "throughput"):
        return SPEED, (labels.device_label(s), s.backend, s.dtype, labels.input_label(s.input_size), s.timed)
    kind = kind_of_task().get(record.task)
    if kind is None:
        return None
    data = labels.dataset_label(record.dataset) if record.dataset else ""
    return kind, (record.task, data, s.backend, s.dtype)


def _label_parts(kind: str, key: tuple[Any, ...], sample: ResultRecord) -> list[str]:
    """The words naming a group, most important first; later ones are used only to tell groups apart."""
    if kind == ACCURACY:
        _name, sha, _n, _generated, engine, backend, dtype = key
        head = f"accuracy on {labels.dataset_label(sample.dataset)}"
        if not is_reference_setup(backend, dtype):  # eager fp32 keeps the label it always had
            head += f" · {backend} {dtype}"
        return [head, f"{engine} engine" if engine else "", f"annotations {str(sha)[:8]}"]
    if kind == COMPLEXITY:
        return [f"complexity at {key[0] or 'model input size'}"]
    if kind != SPEED:  # a component's own table
        _task, data, backend, dtype = key
        head = kind.replace("_", " ") + (f" on {data}" if data else "")
        return [head, "" if is_reference_setup(backend, dtype) else f"{backend} {dtype}"]
    device, backend, dtype, size, timed = key
    return [f"{device} · {backend} · {dtype}", size or "", f"timed {timed}" if timed else ""]


def label_groups(
    keys: list[tuple[str, tuple[Any, ...]]], samples: dict[tuple[str, tuple[Any, ...]], ResultRecord]
) -> dict[tuple[str, tuple[Any, ...]], Group]:
    """A unique, readable label per group: extra conditions are named only where labels would clash."""
    parts = {k: _label_parts(k[0], k[1], samples[k]) for k in keys}
    used = dict.fromkeys(keys, 1)

    def label(k: tuple[str, tuple[Any, ...]]) -> str:
        return " · ".join(p for p in parts[k][: used[k]] if p)

    while True:
        seen: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        for k in keys:
            seen.setdefault(label(k), []).append(k)
        clashing = [k for ks in seen.values() if len(ks) > 1 for k in ks if used[k] < len(parts[k])]
        if not clashing:
            break
        for k in clashing:
            used[k] += 1
    out: dict[tuple[str, tuple[Any, ...]], Group] = {}
    counts: dict[str, int] = {}
    for k in keys:
        text = label(k)
        counts[text] = counts.get(text, 0) + 1
        if counts[text] > 1:  # identical conditions in every word: still never merged
            text += f" #{counts[text]}"
        kind, key = k
        if kind == SPEED:
            out[k] = Group(kind, text, key, device_name=key[0], backend=key[1], dtype=key[2])
        elif kind == ACCURACY:
            out[k] = Group(kind, text, key, backend=key[-2], dtype=key[-1])
        else:
            out[k] = Group(kind, text, key)
    return out


__all__ = [
    "REFERENCE_BACKEND",
    "REFERENCE_DTYPE",
    "Group",
    "group_of",
    "is_reference_setup",
    "kind_of_task",
    "label_groups",
]
