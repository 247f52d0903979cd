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
from dfine_bench.reporting.table_groups import (
    Group,
    group_of,
    kind_of_task,
    label_groups,
)
from dfine_bench.reporting.table_notes import table_notes

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

    grouped = [(r, g) for r in usable if (g := group_of(r)) is not None]
    keys = list(dict.fromkeys(g for _, g in grouped))
    samples: dict[tuple[str, tuple[Any, ...]], ResultRecord] = {}
    for r, g in grouped:
        samples.setdefault(g, r)
    groups = label_groups(keys, samples)
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
            notes=table_notes(
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
