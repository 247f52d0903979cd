"""Which AP differences are real: paired bootstrap differences against a reference evaluation.

Every COCO record carries a bootstrap of AP over its images (``evaluation/bootstrap.py``); two
records of the same images resampled alike pair replicate by replicate (``evaluation/paired.py``).
This module puts that into the comparison:

* ``significance_table`` — one row per evaluation record: AP with its interval, and against the
  reference record ΔAP, ΔAP50, ΔAP75 with their intervals, the two-sided bootstrap p-value of ΔAP
  and a verdict (``higher`` / ``lower`` when the ΔAP interval excludes zero, else ``no
  difference``; a record that cannot be paired says why in one line). ``dfine-bench compare``
  prints it; ``--reference MODEL[/BACKEND[-DTYPE]][@RUN]`` picks the reference row, by default
  the eager fp32 evaluation of the first model, per set of images.
* ``mark_accuracy_tables`` — adds ``AP 95% CI`` and ``ΔAP vs ref`` columns to the accuracy
  tables of a ``Comparison`` (text cells; ``*`` marks a significant difference), so reports and
  ``compare`` show which differences exceed the noise of the image sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dfine_bench.errors import ConfigError, DatasetError
from dfine_bench.evaluation.paired import (
    PAIRED_STATS,
    PairedDifference,
    format_p,
    paired_differences,
    pairing_problem,
)
from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting.tables import ACCURACY, Comparison

SIGNIFICANT_MARK = "*"
REFERENCE_TEXT = "reference"


@dataclass
class PairedRow:
    """One evaluation record against its reference (``diffs`` empty for the reference or when unpaired)."""

    record: ResultRecord
    label: str
    reference: ResultRecord
    diffs: dict[str, PairedDifference] = field(default_factory=dict)
    problem: str | None = None

    @property
    def is_reference(self) -> bool:
        return self.record is self.reference

    def verdict(self) -> str:
        if self.is_reference:
            return REFERENCE_TEXT
        if self.problem:
            return f"not paired: {self.problem}"
        d = self.diffs.get("AP")
        return d.verdict() if d else "not paired: AP undefined on these images"


@dataclass
class SignificanceTable:
    """The paired comparison of a set of evaluation records (``frame``: text cells)."""

    rows: list[PairedRow]
    frame: pd.DataFrame
    notes: list[str]
    title: str = "paired AP differences (bootstrap over images)"


def _setup_text(r: ResultRecord) -> str:
    dtype = r.setup.dtype or "fp32"
    return f"{r.setup.backend or 'eager'}" + ("" if dtype == "fp32" else f"-{dtype}")


def row_label(r: ResultRecord, with_run: bool = False) -> str:
    """``dfine_s/eager``, ``dfine_s/tensorrt-fp16``, with ``@run`` where several runs are compared."""
    return f"{r.model.name}/{_setup_text(r)}" + (f"@{r.run_id}" if with_run else "")


def evaluation_records(records: Sequence[ResultRecord]) -> list[ResultRecord]:
    """The COCO evaluation records (status ok, with an AP) among ``records``, in their order."""
    return [r for r in records if r.task == "evaluation" and r.status == "ok" and r.value("AP") is not None]


def _matches(spec: str, r: ResultRecord) -> bool:
    spec, _, run = spec.partition("@")
    model, _, setup = spec.partition("/")
    if model != r.model.name or (run and run != r.run_id):
        return False
    return not setup or setup in (_setup_text(r), r.setup.backend or "eager", f"{r.setup.backend}-fp32")


def find_reference(spec: str, records: Sequence[ResultRecord]) -> ResultRecord:
    """The record ``--reference MODEL[/BACKEND[-DTYPE]][@RUN]`` names (fp32 first); a one-line
    ``ConfigError`` listing the evaluation rows when none matches."""
    found = [r for r in evaluation_records(records) if _matches(spec, r)]
    if not found:
        rows = sorted({row_label(r) for r in evaluation_records(records)})
        raise ConfigError(
            f"--reference {spec}: no evaluation record matches MODEL[/BACKEND[-DTYPE]][@RUN]; "
            f"evaluation rows here: {', '.join(rows) or 'none'}"
        )
    return next((r for r in found if (r.setup.dtype or "fp32") == "fp32"), found[0])


def _image_set(r: ResultRecord) -> tuple[Any, ...]:
    boot = r.details.get("bootstrap") or {}
    d = r.dataset
    return (d.name if d else None, d.annotations_sha256 if d else None, boot.get("image_ids_sha256"))


def _default_references(records: list[ResultRecord]) -> dict[tuple[Any, ...], ResultRecord]:
    """Per set of images, its first eager fp32 evaluation (else its first record)."""
    groups: dict[tuple[Any, ...], list[ResultRecord]] = {}
    for r in records:
        groups.setdefault(_image_set(r), []).append(r)
    return {k: next((r for r in rs if _setup_text(r) == "eager"), rs[0]) for k, rs in groups.items()}


def paired_rows(records: Sequence[ResultRecord], reference: str | None = None) -> list[PairedRow]:
    """Every evaluation record of ``records`` against its reference (see the module docstring)."""
    evals = evaluation_records(records)
    if not evals:
        return []
    fixed = find_reference(reference, evals) if reference else None
    defaults = _default_references(evals)
    with_run = len({r.run_id for r in evals}) > 1
    rows = []
    for r in evals:
        ref = fixed or defaults[_image_set(r)]
        row = PairedRow(record=r, label=row_label(r, with_run), reference=ref)
        if r is not ref:
            row.problem = pairing_problem(r, ref)
            if row.problem is None:
                row.diffs = paired_differences(r, ref)
        rows.append(row)
    others = [row for row in rows if not row.is_reference]
    if fixed is not None and others and all(row.problem for row in others):
        # an explicit pairing that cannot be made at all is refused, naming what differs
        raise DatasetError(f"--reference {reference}: no evaluation pairs with it; {others[0].problem}")
    # each reference first, then the rows compared with it
    order = {id(r): i for i, r in enumerate(evals)}
    return sorted(rows, key=lambda row: (order[id(row.reference)], not row.is_reference))


def _ci_text(r: ResultRecord, metric: str = "AP") -> str:
    boot = r.details.get("bootstrap") or {}
    ci = (boot.get("ci") or {}).get(metric)
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def _diff_text(d: PairedDifference | None) -> str:
    if d is None:
        return ""
    lo, hi = d.ci
    return f"{d.delta:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def significance_table(
    records: Sequence[ResultRecord], reference: str | None = None
) -> SignificanceTable | None:
    """The paired comparison of the evaluation records (None: there are none)."""
    rows = paired_rows(records, reference)
    if not rows:
        return None
    data = []
    for row in rows:
        r, ap = row.record, row.record.value("AP")
        item = {
            "row": row.label,
            "AP": f"{ap:.2f}" if ap is not None else "",
            "AP 95% CI": _ci_text(r),
            "vs": row_label(row.reference) if not row.is_reference else "",
        }
        for metric in PAIRED_STATS:
            item[f"Δ{metric} [CI]"] = _diff_text(row.diffs.get(metric))
        d = row.diffs.get("AP")
        item["p (ΔAP)"] = format_p(d.p_value) if d else ""
        item["verdict"] = row.verdict()
        data.append(item)
    boots = [r.details.get("bootstrap") or {} for r in evaluation_records(records)]
    settings = sorted({(b.get("replicates"), b.get("seed"), b.get("confidence")) for b in boots if b})
    described = "; ".join(f"B={n}, seed {s}, {c:.0%} intervals" for n, s, c in settings if c) or "none"
    notes = [
        f"percentile bootstrap over images ({described}); Δ = row - reference, both resampled with the same "
        "image weights (paired); p: two-sided bootstrap p-value of ΔAP",
        "verdict: higher / lower when the interval of ΔAP excludes 0, else no difference (on these images)",
    ]
    return SignificanceTable(rows=rows, frame=pd.DataFrame(data), notes=notes)


def mark_accuracy_tables(cmp: Comparison, table: SignificanceTable | None) -> None:
    """Add ``AP 95% CI`` and ``ΔAP vs ref`` columns to ``cmp``'s accuracy tables (``*``: significant)."""
    if table is None:
        return
    by_record = {id(row.record): row for row in table.rows}
    for t in cmp.table(ACCURACY):
        cis, deltas, refs = [], [], set()
        for key in t.row_keys:
            found = [r for r in cmp.sources.get((key, t.title), []) if id(r) in by_record]
            row = by_record[id(found[0])] if found else None
            cis.append(_ci_text(row.record) if row else "")
            deltas.append(_delta_cell(row))
            if row is not None:
                refs.add(row_label(row.reference))
        if not any(cis):  # records from before the intervals: the table stays as it was
            continue
        t.frame["AP 95% CI"] = cis
        t.frame["ΔAP vs ref"] = deltas
        t.notes.append(
            f"AP 95% CI: bootstrap over images; ΔAP vs ref (ref: {', '.join(sorted(refs))}): paired "
            f"bootstrap, {SIGNIFICANT_MARK} = its 95% interval excludes 0 (a real difference on these "
            "images); intervals and p-values: dfine-bench compare"
        )


def _delta_cell(row: PairedRow | None) -> str:
    if row is None:
        return ""
    if row.is_reference:
        return REFERENCE_TEXT
    d = row.diffs.get("AP")
    if d is None:
        return "not paired"
    return f"{d.delta:+.2f}" + (f" {SIGNIFICANT_MARK}" if d.significant else "")
