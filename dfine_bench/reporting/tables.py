"""Comparison tables from any set of result records: models as rows, metrics as columns.

Numbers measured under different conditions never share a column, let alone a cell:

* accuracy columns are split per evaluation dataset (name, annotation hash, size), COCO engine
  and the backend and precision the evaluation's inference ran through (eager fp32 unless
  ``evaluation.backends`` named another);
* complexity columns per input size;
* speed columns per (device name, backend, dtype) — plus input size and timed mode where those
  differ — so a CPU latency is never next to, or averaged with, a GPU one in the same column.

Rows are one model with one set of weights (random-init and released weights are different
rows); when two records would still fill the same cell (the same model measured in two runs),
rows are split by run, then by record — never averaged. A cell holds a number from exactly one
record, ``"failed"`` / ``"skipped"`` when that record did not produce it, or is empty (NaN, shown
as "—") when nothing measured it under that column's conditions. Every table carries a
``stand-in`` column saying which of its rows' numbers come from random-init weights or
generated data.

Which metrics get a column, with which header and format, and which are in the overview, comes
from the metric catalogue (``dfine_bench.records.metrics``: ``MetricDef.label``, ``fmt``,
``headline``), per the task that produces them: a newly registered metric with a label shows up
here without a change to this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dfine_bench.errors import DfineBenchError
from dfine_bench.records.deviations import read_deviations
from dfine_bench.records.metrics import (
    ACCURACY_TABLE,
    COMPLEXITY_TABLE,
    SPEED_TABLE,
    get_metric,
    list_metrics,
)
from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels
from dfine_bench.reporting.selection import filter_records, unique_records

#: The built-in tables (``MetricDef.table``); a component's own task gets a table of its own.
ACCURACY, COMPLEXITY, SPEED = ACCURACY_TABLE, COMPLEXITY_TABLE, SPEED_TABLE
_BUILTIN_KINDS = (ACCURACY, COMPLEXITY, SPEED)

#: Marker for a cell no record filled under that column's conditions (rendered tables only).
NOT_MEASURED = "—"
#: Row-identifying columns every rendered table starts with.
ROW_COLUMNS = ("model", "family", "weights")
STAND_IN_COLUMN = "stand-in"


@dataclass(frozen=True)
class Column:
    """One table column: which record value fills it, its header and how to print it."""

    source: str  # a metric name, or "details.<key>" for a value in the record's details
    label: str
    fmt: str = "{:.2f}"

    def value(self, record: ResultRecord) -> float | None:
        if self.source.startswith("details."):
            v = record.details.get(self.source.removeprefix("details."))
        else:
            v = record.value(self.source)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        return float(v) if math.isfinite(v) else None


#: Columns that are not metrics: values a task keeps in its record's details, after its metrics.
DETAIL_COLUMNS: dict[str, tuple[Column, ...]] = {
    "throughput": (Column("details.best_batch_size", "best batch", "{:.0f}"),),
}


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


def task_columns(task: str, batch_size: int = 1) -> tuple[Column, ...]:
    """The columns of a task's records: each catalogue metric of that task with a ``label`` (in
    catalogue order; ``{bs}`` in a label names a batch size other than 1), then ``DETAIL_COLUMNS``."""
    metric_cols = tuple(
        Column(d.name, d.column_label(batch_size), d.fmt)
        for d in (get_metric(n) for n in list_metrics(task=task))
        if d.label is not None
    )
    if task == "throughput":  # the best batch size sits beside the throughput it gave
        return (*metric_cols[:1], *DETAIL_COLUMNS[task], *metric_cols[1:])
    return (*metric_cols, *DETAIL_COLUMNS.get(task, ()))


def latency_columns(batch_size: int) -> tuple[Column, ...]:
    """Latency columns; a batch size other than 1 is part of the header (``median bs4 (ms)``)."""
    return task_columns("latency", batch_size)


def overview_sources(kind: str) -> tuple[str, ...]:
    """The metrics of the one-table overview for a group kind: the catalogue's ``headline`` ones."""
    tasks = [t for t, k in kind_of_task().items() if k == kind]
    return tuple(n for t in tasks for n in list_metrics(task=t) if get_metric(n).headline)


# the built-in catalogue's columns, for callers that list them
ACCURACY_COLUMNS = task_columns("evaluation")
COMPLEXITY_COLUMNS = task_columns("complexity")
THROUGHPUT_COLUMNS = task_columns("throughput")


@dataclass(frozen=True)
class Group:
    """The conditions shared by one block of columns (one per-conditions table)."""

    kind: str  # accuracy | complexity | speed
    label: str  # unique, shown as the column block's header and the table's title
    key: tuple[Any, ...]
    device_name: str | None = None
    backend: str | None = None
    dtype: str | None = None


@dataclass
class ComparisonTable:
    """One table: ``frame`` has the row columns, ``stand-in`` and raw values (floats, or a status)."""

    title: str
    kind: str  # accuracy | complexity | speed | overview
    frame: pd.DataFrame
    columns: dict[str, Column] = field(default_factory=dict)  # value column label -> Column
    notes: list[str] = field(default_factory=list)
    group: Group | None = None
    row_keys: list[tuple[str, ...]] = field(default_factory=list)  # one per frame row

    @property
    def has_stand_ins(self) -> bool:
        return STAND_IN_COLUMN in self.frame and bool((self.frame[STAND_IN_COLUMN] != "").any())


@dataclass
class Comparison:
    """Every table for one set of records, plus the records behind each (row, group) block."""

    records: list[ResultRecord]
    tables: list[ComparisonTable]
    overview: ComparisonTable
    sources: dict[tuple[tuple[str, ...], str], list[ResultRecord]]  # (row key, group label) -> records
    row_meta: dict[tuple[str, ...], dict[str, str]]
    filters: dict[str, Any]

    def table(self, kind: str) -> list[ComparisonTable]:
        return [t for t in self.tables if t.kind == kind]

    def flat_frame(self) -> pd.DataFrame:
        """Every value of every table in one wide frame (``"<conditions> | <column>"`` headers), for CSV."""
        if not self.tables:
            raise DfineBenchError(
                "no table values: these records hold no evaluation, complexity or speed results"
            )
        lead = [c for c in self.overview.frame.columns if c[0] == ""]
        out = self.overview.frame[lead].copy()
        out.columns = [c[1] for c in lead]
        position = {key: i for i, key in enumerate(self.overview.row_keys)}
        for t in self.tables:
            values = [c for c in t.frame.columns if c not in (*ROW_COLUMNS, "run", "record")]
            block = _aligned(t, values, position)
            block.columns = [f"{t.title} | {c}" for c in values]
            out = pd.concat([out, block], axis=1)
        return out


# -- grouping ------------------------------------------------------------------------------------
#: The setup every AP is referred to: the model run by PyTorch in fp32 (``evaluation.backends``'
#: ``eager-fp32``, whose records keep their plain ids).
REFERENCE_BACKEND, REFERENCE_DTYPE = "eager", "fp32"


def is_reference_setup(backend: str | None, dtype: str | None) -> bool:
    """Whether (backend, dtype) is the reference eager fp32 an AP is measured with by default."""
    return (backend or REFERENCE_BACKEND, dtype or REFERENCE_DTYPE) == (REFERENCE_BACKEND, REFERENCE_DTYPE)


def _group_of(record: ResultRecord) -> tuple[str, tuple[Any, ...]] | None:
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


def _label_groups(
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


def _columns_for(record: ResultRecord) -> tuple[Column, ...]:
    if record.task not in kind_of_task():
        return ()
    batch_size = int(record.setup.batch_size or 1) if record.task == "latency" else 1
    return task_columns(record.task, batch_size)


def _cells(record: ResultRecord) -> dict[str, tuple[Column, float]]:
    """Column label -> (column, value) for the numbers this record holds."""
    out: dict[str, tuple[Column, float]] = {}
    for col in _columns_for(record):
        v = col.value(record)
        if v is not None:
            out[col.label] = (col, v)
    return out


def _status_cells(record: ResultRecord, present: set[str]) -> dict[str, tuple[Column, str]]:
    """Where a failed/skipped record says so: its task's columns the table has (else its first one)."""
    if record.status == "ok":
        return {}
    cols = _columns_for(record)
    numbers = _cells(record)
    marked = {c.label: (c, record.status) for c in cols if c.label in present and c.label not in numbers}
    if not marked and cols and cols[0].label not in numbers:
        marked = {cols[0].label: (cols[0], record.status)}
    return marked


# -- building the tables ---------------------------------------------------------------------------
_ROW_LEVELS = (("model", "weights"), ("model", "weights", "run"), ("model", "weights", "run", "record"))


def _row_key(record: ResultRecord, level: int) -> tuple[str, ...]:
    key: tuple[str, ...] = (record.model.name, labels.weights_key(record.model))
    if level >= 1:
        key += (record.run_id,)
    if level >= 2:
        key += (record.record_id,)
    return key


def build_comparison(
    records: Iterable[ResultRecord],
    *,
    device: str | None = None,
    backend: str | None = None,
    family: str | None = None,
    tasks: Sequence[str] | None = None,
) -> Comparison:
    """All comparison tables for ``records`` (filtered as in ``filter_records``).

    Returns one table per set of conditions (accuracy per dataset, complexity per input size,
    speed per device/backend/dtype) and an overview with the headline columns of each.
    """
    records = list(records)
    if not records:
        raise DfineBenchError("no records to compare: run `dfine-bench run` first, or give a run folder")
    records = unique_records(records)
    selected = filter_records(records, device=device, backend=backend, family=family, tasks=tasks)
    tables_of = kind_of_task()
    usable = [r for r in selected if r.task in tables_of]
    filters = {"device": device, "backend": backend, "family": family, "tasks": list(tasks or [])}

    grouped = [(r, g) for r in usable if (g := _group_of(r)) is not None]
    keys = list(dict.fromkeys(g for _, g in grouped))
    samples: dict[tuple[str, tuple[Any, ...]], ResultRecord] = {}
    for r, g in grouped:
        samples.setdefault(g, r)
    groups = _label_groups(keys, samples)
    level = _row_level(grouped, groups)
    cells = _Cells.fill(grouped, groups, level)
    ordered_groups = sorted(
        (groups[k] for k in keys),
        key=lambda g: (_BUILTIN_KINDS.index(g.kind) if g.kind in _BUILTIN_KINDS else 3, g.label),
    )
    row_columns = list(_ROW_LEVELS[level])
    tables = [cells.table(group, row_columns) for group in ordered_groups]
    overview = _overview(tables, cells.row_meta, cells.stand_in, row_columns)
    return Comparison(
        records=selected,
        tables=tables,
        overview=overview,
        sources=cells.sources,
        row_meta=cells.row_meta,
        filters=filters,
    )


_Grouped = list[tuple[ResultRecord, tuple[str, tuple[Any, ...]]]]


def _row_level(grouped: _Grouped, groups: dict[tuple[str, tuple[Any, ...]], Group]) -> int:
    """The coarsest row identity (``_ROW_LEVELS``) under which no two records fill the same cell."""
    for level in range(len(_ROW_LEVELS)):
        filled: dict[tuple, tuple[str, str]] = {}
        clash = False
        for r, g in grouped:
            ident = (r.run_id, r.record_id)
            # a record's own slot: two latency records at batch 1 for one row are a clash, even failed
            slot = f"{r.task} bs{r.setup.batch_size}" if r.task == "latency" else r.task
            for label in (*_cells(r), slot):
                cell = (_row_key(r, level), groups[g].label, label)
                clash = clash or (cell in filled and filled[cell] != ident)
                filled[cell] = ident
        if not clash:
            return level
    return len(_ROW_LEVELS) - 1


@dataclass
class _Cells:
    """Every table's cells, keyed by (row, table title): values, columns, records, stand-in reasons."""

    values: dict[tuple[tuple[str, ...], str], dict[str, float | str]] = field(default_factory=dict)
    columns: dict[str, dict[str, Column]] = field(default_factory=dict)
    sources: dict[tuple[tuple[str, ...], str], list[ResultRecord]] = field(default_factory=dict)
    stand_in: dict[tuple[tuple[str, ...], str], set[str]] = field(default_factory=dict)
    row_meta: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)

    @classmethod
    def fill(cls, grouped: _Grouped, groups: dict[tuple[str, tuple[Any, ...]], Group], level: int) -> _Cells:
        out = cls()
        for r, g in grouped:
            out._add(r, _row_key(r, level), groups[g].label)
        for r, g in grouped:  # second pass: statuses only in columns the table has
            row, glabel = _row_key(r, level), groups[g].label
            for label, (col, status) in _status_cells(r, set(out.columns.get(glabel, {}))).items():
                out.values[(row, glabel)][label] = status
                out.columns.setdefault(glabel, {})[label] = col
        return out

    def _add(self, r: ResultRecord, row: tuple[str, ...], glabel: str) -> None:
        meta = {"model": r.model.name, "family": r.model.family, "weights": labels.weights_label(r.model)}
        self.row_meta.setdefault(row, {**meta, "run": r.run_id, "record": r.record_id})
        self.sources.setdefault((row, glabel), []).append(r)
        self.stand_in.setdefault((row, glabel), set()).update(labels.stand_in_reasons(r))
        cells = self.values.setdefault((row, glabel), {})
        for label, (col, v) in _cells(r).items():
            cells[label] = v
            self.columns.setdefault(glabel, {})[label] = col

    def table(self, group: Group, row_columns: list[str]) -> ComparisonTable:
        here = group.label
        rows = [row for row in self.row_meta if (row, here) in self.values or (row, here) in self.sources]
        data = []
        for row in rows:
            meta = self.row_meta[row]
            item: dict[str, Any] = {c: meta[c] for c in ("model", "family", "weights")}
            item |= {c: meta[c] for c in ("run", "record") if c in row_columns}
            item[STAND_IN_COLUMN] = labels.stand_in_text(self.stand_in.get((row, here), set()))
            item.update(self.values.get((row, here), {}))
            data.append(item)
        cols = _ordered_columns(self.columns.get(here, {}))
        frame = pd.DataFrame(data, columns=[*_lead_columns(row_columns), STAND_IN_COLUMN, *cols])
        frame = frame.astype(object).where(frame.notna(), float("nan"))
        return ComparisonTable(
            title=here,
            kind=group.kind,
            frame=frame,
            columns={c: self.columns[here][c] for c in cols},
            notes=_table_notes(
                group, [r for (_row, gl), rs in self.sources.items() if gl == here for r in rs]
            ),
            group=group,
            row_keys=rows,
        )


def _lead_columns(row_columns: list[str]) -> list[str]:
    lead = ["model", "family", "weights"]
    return lead + [c for c in ("run", "record") if c in row_columns]


def _ordered_columns(cols: dict[str, Column]) -> list[str]:
    """Columns in catalogue order (accuracy, complexity, latency by batch size, throughput)."""

    order = [c.source for task in kind_of_task() for c in task_columns(task)]

    def rank(label: str) -> tuple[int, str]:
        src = cols[label].source
        return (order.index(src) if src in order else len(order), label)

    return sorted(cols, key=rank)


def _table_notes(group: Group, records: list[ResultRecord]) -> list[str]:
    notes: list[str] = []
    if group.kind == ACCURACY:
        rec = records[0]
        notes.append("COCO AP/AR in percent (IoU .50:.95 unless named), maxDets 100")
        if rec.setup.engine:
            notes.append(f"COCO engine: {rec.setup.engine}")
        devices = sorted({labels.setup_label(r.setup) for r in records})
        notes.append(f"evaluated on {'; '.join(devices)}")
    elif group.kind == COMPLEXITY:
        notes.append(
            "params in millions, counted as the official get_info.py does (the deploy-mode model); "
            "params total: every parameter of the model as built; GFLOPs of one forward at batch 1 "
            "(calflops, as the paper)"
        )
    elif group.kind != SPEED:  # a component's own table: what its metrics are
        notes.extend(_metric_notes(records))
    else:
        timed = sorted({r.setup.timed for r in records if r.setup.timed})
        sizes = sorted({labels.input_label(r.setup.input_size) or "?" for r in records})
        notes.append(
            f"measured on {group.device_name} with {group.backend} {group.dtype}; input {', '.join(sizes)}; "
            f"timed: {', '.join(timed) or 'unknown'}; latency per batch in ms"
        )
    unstable = sorted(
        {
            r.model.name
            for r in records
            if r.task == "latency" and (r.details.get("validity") or {}).get("status") == "unstable"
        }
    )
    if unstable:  # profiling.validity: a high CV, an oversubscribed CPU or a throttling GPU
        notes.append(
            f"UNSTABLE latency (noisy or oversubscribed machine, or a throttling GPU; not judged by claims): "
            f"{', '.join(unstable)}"
        )
    # a throughput record's setup is its best batch size: its "batch size N, not 1" belongs to the
    # throughput columns, never to the batch-1 latency columns beside them
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


def _aligned(table: ComparisonTable, cols: list[str], position: dict[tuple[str, ...], int]) -> pd.DataFrame:
    """``cols`` of ``table`` laid on the overview's rows (``position``: row key -> row number);
    rows the table does not have stay NaN."""
    block = pd.DataFrame(float("nan"), index=range(len(position)), columns=cols, dtype=object)
    for key, (_, item) in zip(table.row_keys, table.frame.iterrows()):
        for c in cols:
            block.at[position[key], c] = item[c]
    return block


def _overview(
    tables: list[ComparisonTable],
    row_meta: dict[tuple[str, ...], dict[str, str]],
    stand_in: dict[tuple[tuple[str, ...], str], set[str]],
    row_columns: list[str],
) -> ComparisonTable:
    """The headline columns of every table side by side; column headers are (conditions, column)."""
    lead = _lead_columns(row_columns)
    rows = list(row_meta)
    parts: list[pd.DataFrame] = []
    columns: dict[str, Column] = {}
    meta = pd.DataFrame([{c: row_meta[r][c] for c in lead} for r in rows], columns=lead)
    reasons = [set().union(*(v for (row, _), v in stand_in.items() if row == r)) for r in rows]
    meta[STAND_IN_COLUMN] = [labels.stand_in_text(x) for x in reasons]
    meta.columns = pd.MultiIndex.from_tuples([("", c) for c in meta.columns])
    parts.append(meta)
    position = {r: i for i, r in enumerate(rows)}
    for t in tables:
        wanted = [c for c, col in t.columns.items() if col.source in overview_sources(t.kind)]
        if not wanted:
            continue
        block = _aligned(t, wanted, position)
        block.columns = pd.MultiIndex.from_tuples([(t.title, c) for c in wanted])
        for c in wanted:
            columns[f"{t.title} | {c}"] = t.columns[c]
        parts.append(block)
    frame = pd.concat(parts, axis=1)
    return ComparisonTable(title="overview", kind="overview", frame=frame, columns=columns, row_keys=rows)
