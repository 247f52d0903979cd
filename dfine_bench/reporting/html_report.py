"""``index.html``: the report as one self-contained file.

Plots are embedded as base64 PNG, styles are inline, there is no script and no external
resource (no CDN, no web font), so the file opens offline, from a CI artifact or an e-mail.
The page is rendered from ``templates/report.html.j2`` with Jinja2 (auto-escaping on); tables
come from pandas ``to_html``, which escapes their cells.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import jinja2
import pandas as pd

from dfine_bench.reporting.claims_table import NO_CLAIMS, SHOWN_VERDICTS
from dfine_bench.reporting.content import ReportContent
from dfine_bench.reporting.error_analysis_section import INTRO as ERROR_ANALYSIS_INTRO
from dfine_bench.reporting.error_analysis_section import class_headings, error_analysis_blocks
from dfine_bench.reporting.fdr_table import table2_section
from dfine_bench.reporting.formatting import LEGEND, format_claims, formatted_frame
from dfine_bench.reporting.precision_section import INTRO as PRECISION_INTRO
from dfine_bench.reporting.precision_section import TITLE as PRECISION_TITLE
from dfine_bench.reporting.precision_section import diagnosis_lines, precision_cells, precision_frame
from dfine_bench.reporting.provenance import NOTHING_OFF_PROTOCOL

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dfine_bench.reporting", "templates"),
    autoescape=jinja2.select_autoescape(default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _html_table(frame: pd.DataFrame, classes: str = "") -> str:
    if frame.empty:
        return ""
    return frame.to_html(index=False, border=0, classes=classes or None, na_rep="—", escape=True)


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG header (so the page reserves the space before decoding)."""
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _claims_html(content: ReportContent) -> tuple[str, str, int]:
    """(main claims table, folded table of the claims no record covers, how many those are)."""
    claims = content.claims
    if claims is None or claims.frame.empty:
        return "", "", 0
    html = _html_table(format_claims(claims.display_frame(SHOWN_VERDICTS)), "claims text")
    for verdict in ("pass", "fail"):
        html = html.replace(f"<td>{verdict}</td>", f'<td class="verdict-{verdict}">{verdict}</td>')
    rest = claims.folded_frame()
    folded = _html_table(format_claims(rest), "claims text") if len(rest) else ""
    return html, folded, len(rest)


def _error_analysis_html(content: ReportContent) -> list[dict[str, Any]]:
    """The error-analysis blocks with their tables as HTML ([]: no such records, no section)."""
    out = []
    for b in error_analysis_blocks(content.comparison.records):
        best, worst = class_headings(b)
        tables = [
            ("dAP per error type", _html_table(b.dap, "text")),
            ("AP per object size", _html_table(b.sizes)),
            (best, _html_table(b.best_classes)),
            (worst, _html_table(b.worst_classes)),
            (f"The {len(b.worst_images)} worst images", _html_table(b.worst_images, "text")),
        ]
        out.append(
            {
                "title": b.title,
                "subtitle": b.subtitle,
                "stand_in": b.stand_in,
                "problem": b.problem,
                "notes": b.notes,
                "tables": [{"heading": h, "html": html} for h, html in tables if h and html],
            }
        )
    return out


def _table2_html(content: ReportContent) -> dict[str, Any] | None:
    """The Table 2 layout section (None: no baseline and its FDR variant in these records)."""
    section = table2_section(content.comparison.records)
    if section is None:
        return None
    html = _html_table(section.frame(), "records")
    for i in section.delta_rows:  # the Δ rows in bold, as in the markdown report
        html = html.replace(
            f"<td>{section.rows[i][0]}</td>", f"<td><strong>{section.rows[i][0]}</strong></td>", 1
        )
    return {"title": section.title, "intro": section.intro, "html": html, "note": section.note}


def _precision_html(content: ReportContent) -> dict[str, Any] | None:
    """The deployment-fidelity section (None: no reduced-precision cell in these records)."""
    cells = precision_cells(content.comparison.records)
    if not cells:
        return None
    html = _html_table(precision_frame(cells), "records")
    return {"title": PRECISION_TITLE, "intro": PRECISION_INTRO, "html": html, "lines": diagnosis_lines(cells)}


def render_html(content: ReportContent) -> str:
    """The report page for ``content`` as one HTML string."""
    cmp = content.comparison
    prov = content.provenance
    plots: list[dict[str, Any]] = []
    for p in content.plots.plots:
        data = p.png.read_bytes()
        width, height = _png_size(data)
        plots.append(
            {
                "name": p.name,
                "title": p.title,
                "caption": p.caption,
                "png_b64": base64.b64encode(data).decode("ascii"),
                "width": width,
                "height": height,
            }
        )
    filters = ", ".join(f"{k}={v}" for k, v in cmp.filters.items() if v)
    claims_table, claims_folded, claims_folded_count = _claims_html(content)
    template = _ENV.get_template("report.html.j2")
    return template.render(
        title=content.title,
        generated_at=content.generated_at,
        version=content.version,
        num_records=content.num_records,
        run_ids=prov.run_ids,
        filters=filters,
        statement=prov.stand_in,
        nothing_off_protocol=NOTHING_OFF_PROTOCOL,
        on_protocol=prov.on_protocol,
        has_stand_ins=prov.has_stand_ins,
        paper_protocol=content.paper_protocol,
        legend=LEGEND,
        overview=_html_table(formatted_frame(cmp.overview), "records") if cmp.tables else "",
        claims_summary=content.claims.summary() if content.claims else NO_CLAIMS,
        claims_table=claims_table,
        claims_folded=claims_folded,
        claims_folded_count=claims_folded_count,
        tables=[
            {"title": t.title, "notes": t.notes, "html": _html_table(formatted_frame(t), "records")}
            for t in cmp.tables
        ],
        table2=_table2_html(content),
        error_analysis=_error_analysis_html(content),
        error_analysis_intro=ERROR_ANALYSIS_INTRO,
        precision=_precision_html(content),
        plots=plots,
        skipped=[s.reason for s in content.plots.skipped],
        problems=_html_table(prov.problems, "text"),
        environments=_html_table(prov.environments, "kv"),
        models=_html_table(prov.models, "kv"),
        datasets=_html_table(prov.datasets, "kv"),
        deviations=_html_table(prov.deviations, "text"),
        notes=_html_table(prov.notes, "text"),
    )
