"""``build_report``: records in, a report folder out (``index.html``, ``README.md``, ``plots/``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import dfine_bench
from dfine_bench.errors import DfineBenchError
from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting.claims_table import check_claims_table
from dfine_bench.reporting.content import ReportContent
from dfine_bench.reporting.folder import check_report_folder, mark_report_folder, remove_stale, written_files
from dfine_bench.reporting.html_report import render_html
from dfine_bench.reporting.markdown_report import render_markdown
from dfine_bench.reporting.plots import make_plots
from dfine_bench.reporting.precision_section import precision_plots
from dfine_bench.reporting.provenance import provenance
from dfine_bench.reporting.significance import mark_accuracy_tables, significance_table
from dfine_bench.reporting.tables import build_comparison
from dfine_bench.utils.files import atomic_write_text

DEFAULT_TITLE = "dfine-bench report"


def build_report(
    records: Iterable[ResultRecord],
    out_dir: str | os.PathLike[str],
    *,
    claims: str | None = "dfine_paper",
    title: str = DEFAULT_TITLE,
    force: bool = False,
) -> Path:
    """Render the report of ``records`` into ``out_dir`` and return that folder.

    Writes ``index.html`` (self-contained), ``README.md`` (links to ``plots/*.png``) and
    ``plots/*.png|svg``, each file atomically, and marks the folder as a report folder (see
    ``reporting/folder.py``). A folder with files dfine-bench did not write is refused unless
    ``force``; plot files an earlier report wrote that this one did not draw are removed, and no
    other file ever is. ``claims`` names a claim set (``None``: no claims). An empty set of
    records is an error, never an empty report.
    """
    records = list(records)
    if not records:
        raise DfineBenchError(
            "no records to report: run `dfine-bench run` first (records land under results/<run-id>/records/)"
        )
    out = Path(out_dir)
    check_report_folder(out, force=force)
    previous = written_files(out)
    plots_dir = out / "plots"
    comparison = build_comparison(records)
    # accuracy tables get AP intervals and paired ΔAP columns, "*" where the difference is significant
    mark_accuracy_tables(comparison, significance_table(comparison.records))
    claims_table = check_claims_table(records, claims)
    plot_set = make_plots(comparison, claims_table, plots_dir)
    plot_set.plots += precision_plots(records, plots_dir)  # only with reduced-precision cells
    content = ReportContent(
        title=title,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=dfine_bench.__version__,
        out_dir=out,
        comparison=comparison,
        claims=claims_table,
        plots=plot_set,
        provenance=provenance(records),
    )
    atomic_write_text(out / "index.html", render_html(content))
    atomic_write_text(out / "README.md", render_markdown(content))
    wrote = {"index.html", "README.md"}
    wrote |= {f"plots/{p.png.name}" for p in plot_set.plots} | {f"plots/{p.svg.name}" for p in plot_set.plots}
    remove_stale(out, previous, wrote)
    mark_report_folder(out, wrote)
    return out
