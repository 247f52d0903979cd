"""How a check's outcome is shown: a short console table and a markdown page for a pull request.

Short tables list what changed and what did not pass: identical values are counted, not listed
(``full=True`` lists every compared row). Both forms end with the problems that made the run
incomparable, the notes, and the tolerances in force with where each came from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from dfine_bench.checks.gate import CheckResult
from dfine_bench.checks.paired_view import HEADER as PAIRED_HEADER
from dfine_bench.checks.paired_view import TITLE as PAIRED_TITLE
from dfine_bench.checks.rules import (
    BAND_QUANTILE,
    BETTER,
    CANNOT,
    CHANGED,
    NOT_COMPARED,
    OK,
    WORSE,
    Row,
    fmt_value,
)
from dfine_bench.records.metrics import COCO_STATS

HEADER = ("record", "metric", "baseline", "run", "verdict", "why")
_TITLES = {0: "PASS: no regression", 1: "FAIL: regression", 2: "CANNOT COMPARE"}


def shown_rows(result: CheckResult, full: bool = False) -> list[Row]:
    """The rows a short table lists: anything not ok, and any value that changed."""
    if full:
        return list(result.rows)
    return [r for r in result.rows if r.verdict != OK or r.changed]


def _cells(row: Row) -> list[str]:
    def with_unit(v: object) -> str:
        return fmt_value(v) + (f" {row.unit}" if row.unit and isinstance(v, float) else "")

    return [
        row.record_id,
        row.metric,
        with_unit(row.baseline),
        with_unit(row.value),
        row.verdict,
        row.why,
    ]


def _counts(result: CheckResult) -> str:
    counts = Counter(r.verdict for r in result.rows)
    order = [v for v in (WORSE, CHANGED, CANNOT, NOT_COMPARED, BETTER, OK) if v in counts]
    return ", ".join(f"{counts[v]} {v}" for v in order) or "nothing compared"


def coco_rule(tolerances: Mapping[str, float]) -> str:
    """The COCO-stat rule as it is in force: the tolerance most stats share, then each one that differs.

    A suite may set one stat's tolerance (``AP: 0.5``) and leave the rest at the default: printing
    only ``AP``'s value as "AP/AR" would claim a tolerance AP50 ... ARl do not have.
    """
    values = {k: tolerances[k] for k in COCO_STATS if k in tolerances}
    if not values:
        return "AP/AR: not gated"
    common = Counter(values.values()).most_common(1)[0][0]
    others = [f"{k} > {v:g}" for k, v in values.items() if v != common]
    rule = f"AP/AR drop > {common:g} points fails"
    return f"{rule} (except {', '.join(others)})" if others else rule


def _tolerance_lines(result: CheckResult) -> list[str]:
    non_default = {k: v for k, v in result.tolerances.items() if result.tolerance_sources.get(k) != "default"}
    parts = [f"{k}={v:g} ({result.tolerance_sources[k]})" for k, v in sorted(non_default.items())]
    t = result.tolerances
    rule = (
        f"{coco_rule(t)}; params and GFLOPs must be equal; latency fails when the "
        f"median > baseline p{BAND_QUANTILE} x (1 + {t['latency_median']:g}), "
        f"by > {t['timing_min_delta_ms']:g} ms, "
        f"with a one-sided Mann-Whitney U p < {t['timing_alpha']:g}; throughput fails below "
        f"baseline / (latency spread x (1 + {t['throughput']:g}))"
    )
    lines = [f"rules: {rule}"]
    if parts:
        lines.append(f"tolerances set: {'; '.join(parts)}")
    return lines


def format_table(rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER) -> str:
    """A plain fixed-width table (the last column is left to run on)."""
    if not rows:
        return ""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths)]
        lines.append("  ".join([*cells, str(r[-1])]).rstrip())
    return "\n".join(lines)


def render_text(result: CheckResult, full: bool = False) -> str:
    """The console form: verdict line, the short table, problems, notes, rules."""
    lines = [
        f"{_TITLES[result.exit_code]} (exit {result.exit_code})",
        f"baseline: {result.baseline_label}",
        f"run:      {result.run_label}",
        f"compared: {_counts(result)}",
    ]
    rows = shown_rows(result, full)
    if rows:
        lines += ["", format_table([_cells(r) for r in rows])]
    hidden = len(result.rows) - len(rows)
    if hidden:
        lines.append(f"({hidden} unchanged value(s) not listed; --all lists them)")
    lines += _paired_text(result)
    if result.problems:
        lines += ["", "cannot compare:"] + [f"  - {p}" for p in result.problems]
    if result.notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in result.notes]
    lines += ["", *_tolerance_lines(result)]
    return "\n".join(lines)


def _paired_text(result: CheckResult) -> list[str]:
    """The paired ΔAP section of the console form (nothing when no record has a bootstrap)."""
    view = result.paired
    if not view:
        return []
    lines = ["", f"{PAIRED_TITLE}:"]
    if view.lines:
        lines.append(format_table([line.cells() for line in view.lines], PAIRED_HEADER))
    return lines + [f"  - {n}" for n in view.notes]


def _paired_markdown(result: CheckResult) -> list[str]:
    """The paired ΔAP section of the markdown page."""
    view = result.paired
    if not view:
        return []
    lines = ["", f"**{_md_escape(PAIRED_TITLE[0].upper() + PAIRED_TITLE[1:])}:**"]
    if view.lines:
        cells = [[f"`{c[0]}`", f"`{c[1]}`", *c[2:]] for c in (line.cells() for line in view.lines)]
        lines += ["", markdown_table(PAIRED_HEADER, cells)]
    if view.notes:
        lines += [""] + [f"- {_md_escape(n)}" for n in view.notes]
    return lines


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub pipe table of text cells: the report's ``markdown_table``, so both escape alike.

    Imported here, not at the top: ``dfine_bench.reporting`` loads matplotlib, and
    ``import dfine_bench.checks`` (the gate as a library) should not.
    """
    from dfine_bench.reporting.formatting import markdown_table as frame_to_markdown

    return frame_to_markdown(pd.DataFrame([list(map(str, r)) for r in rows], columns=list(header)))


def render_markdown(result: CheckResult, full: bool = False) -> str:
    """A pull-request comment: the same content as ``render_text``, as markdown."""
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[result.exit_code]
    lines = [
        f"## {icon} dfine-bench check: {_TITLES[result.exit_code]}",
        "",
        f"Baseline `{result.baseline_label}`, run `{result.run_label}`: {_counts(result)}.",
    ]
    rows = shown_rows(result, full)
    if rows:
        cells = []
        for r in rows:
            c = _cells(r)
            c[0], c[1] = f"`{c[0]}`", f"`{c[1]}`"
            c[4] = f"**{c[4]}**" if r.failing or r.verdict == CANNOT else c[4]
            cells.append(c)
        lines += ["", markdown_table(HEADER, cells)]
    hidden = len(result.rows) - len(rows)
    if hidden:
        lines += ["", f"{hidden} unchanged value(s) not listed."]
    lines += _paired_markdown(result)
    if result.problems:
        lines += ["", "**Cannot compare:**", ""] + [f"- {_md_escape(p)}" for p in result.problems]
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {_md_escape(n)}" for n in result.notes]
    lines += ["", *(f"<sub>{_md_escape(t)}</sub>  " for t in _tolerance_lines(result))]
    return "\n".join(lines) + "\n"


def render_error_markdown(message: str, what: str = "check") -> str:
    """The markdown written when the inputs could not even be read (exit 2)."""
    return f"## ⚠️ dfine-bench {what}: CANNOT COMPARE\n\n{_md_escape(message)}\n"
