"""``README.md``: the report as GitHub-renderable markdown, with the HTML report's tables and
links to ``plots/*.png`` (relative, so they resolve in the report folder and on GitHub)."""

from __future__ import annotations

import pandas as pd

from dfine_bench.reporting.claims_table import NO_CLAIMS, SHOWN_VERDICTS
from dfine_bench.reporting.content import ReportContent
from dfine_bench.reporting.error_analysis_section import error_analysis_blocks, error_analysis_markdown
from dfine_bench.reporting.fdr_table import table2_markdown
from dfine_bench.reporting.formatting import LEGEND, format_claims, formatted_frame, markdown_table
from dfine_bench.reporting.precision_section import precision_markdown
from dfine_bench.reporting.provenance import NOTHING_OFF_PROTOCOL


def _table(frame: pd.DataFrame, empty: str) -> str:
    return markdown_table(frame.fillna("")) if not frame.empty else empty


def _tagged_overview(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The overview with short block keys in its headers (``AP [A1]``, ``latency median (ms) [S1]``)
    and the legend naming each block's conditions: long headers do not fit a GitHub table."""
    prefix = {"accuracy": "A", "complexity": "C"}
    tags: dict[str, str] = {}
    counts: dict[str, int] = {}
    for block in dict.fromkeys(c[0] for c in frame.columns if c[0]):
        letter = next((v for k, v in prefix.items() if block.startswith(k)), "S")
        counts[letter] = counts.get(letter, 0) + 1
        tags[block] = f"{letter}{counts[letter]}"
    out = frame.copy()
    out.columns = [f"{c[1]} [{tags[c[0]]}]" if c[0] else c[1] for c in frame.columns]
    return out, [f"[{tag}] {block}" for block, tag in tags.items()]


def render_markdown(content: ReportContent) -> str:
    """The markdown report for ``content``."""
    records = content.comparison.records
    out = [*_header(content), *_overview(content), *_claims(content)]
    out += table2_markdown(records)  # only when a baseline and its FDR variant were measured
    out += _setup_tables(content)
    out += error_analysis_markdown(error_analysis_blocks(records))  # only with such records
    out += precision_markdown(records)  # only with reduced-precision cells
    out += [*_plots(content), *_provenance(content)]
    return "\n".join(out)


def _header(content: ReportContent) -> list[str]:
    """Title, where the report came from, and the stand-in / protocol box."""
    prov = content.provenance
    out: list[str] = [f"# {content.title}", ""]
    out.append(
        f"Generated {content.generated_at} by dfine-bench {content.version} from {content.num_records} "
        f"record(s) of run(s) {', '.join(prov.run_ids)}. The same report with embedded plots: "
        "[index.html](index.html)."
    )
    filters = ", ".join(f"{k}={v}" for k, v in content.comparison.filters.items() if v)
    if filters:
        out.append(f"Filters: {filters}.")
    out.append("")
    if prov.stand_in:
        out += ["> [!WARNING]", "> **Stand-ins and deviations — read this first:**", ">"]
        out += [f"> - {line}" for line in prov.stand_in]
    else:  # only when no record is a stand-in or lists a deviation
        out += ["> [!NOTE]", f"> {NOTHING_OFF_PROTOCOL}"]
    out += [">", *(f"> {line}" for line in prov.on_protocol)]
    return [*out, f"> The paper's protocol: {content.paper_protocol}.", ""]


def _overview(content: ReportContent) -> list[str]:
    cmp = content.comparison
    out = ["## Overview", "", f"Column blocks per measurement setup (keys below the table); {LEGEND}.", ""]
    if not cmp.tables:
        return [*out, "No evaluation, complexity, latency or throughput records.", ""]
    frame, legend = _tagged_overview(formatted_frame(cmp.overview))
    return [*out, markdown_table(frame), "", *(f"- {line}" for line in legend), ""]


def _claims(content: ReportContent) -> list[str]:
    """The claims' summary, the claims some record covers, and the rest folded away."""
    claims = content.claims
    out = ["## Paper claims: claimed vs measured", "", claims.summary() if claims else NO_CLAIMS, ""]
    if claims is None or claims.frame.empty:
        return out
    shown = claims.display_frame(SHOWN_VERDICTS)
    if len(shown):
        out += [markdown_table(format_claims(shown)), ""]
    rest = claims.folded_frame()
    if len(rest):
        # GitHub renders <details>; the table inside needs blank lines around it
        out += ["<details>", f"<summary>{len(rest)} claim(s) that no record here covers</summary>", ""]
        out += [markdown_table(format_claims(rest)), "", "</details>", ""]
    return out


def _setup_tables(content: ReportContent) -> list[str]:
    out = ["## Tables per measurement setup", ""]
    for t in content.comparison.tables:
        out += [f"### {t.title}", ""]
        out += [f"- {n}" for n in t.notes]
        out += ["", markdown_table(formatted_frame(t)), ""]
    return out


def _plots(content: ReportContent) -> list[str]:
    """Each plot's PNG with its caption and SVG link (relative to the report folder), then the skipped."""
    out = ["## Plots", ""]
    for p in content.plots.plots:
        rel_png = p.png.relative_to(content.out_dir).as_posix()
        rel_svg = p.svg.relative_to(content.out_dir).as_posix()
        out += [f"![{p.title}]({rel_png})", "", f"{p.caption} ([SVG]({rel_svg}))", ""]
    if content.plots.skipped:
        out += ["Plots not drawn:", ""] + [f"- {s.reason}" for s in content.plots.skipped] + [""]
    return out


def _provenance(content: ReportContent) -> list[str]:
    prov = content.provenance
    out = ["## Failed and skipped tasks", "", _table(prov.problems, "None: every record is `ok`."), ""]
    out += ["## Provenance", "", "### Environment", "", _table(prov.environments, "Not recorded."), ""]
    out += ["### Models and weights", "", _table(prov.models, "None."), ""]
    out += ["### Datasets", "", _table(prov.datasets, "No record used a dataset."), ""]
    out += ["### Deviations from the paper's protocol", "", _table(prov.deviations, "None recorded."), ""]
    out += ["### Notes from the records", "", _table(prov.notes, "None."), ""]
    return out
