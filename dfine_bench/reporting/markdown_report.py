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
    cmp = content.comparison
    prov = content.provenance
    out: list[str] = [f"# {content.title}", ""]
    out.append(
        f"Generated {content.generated_at} by dfine-bench {content.version} from {content.num_records} "
        f"record(s) of run(s) {', '.join(prov.run_ids)}. The same report with embedded plots: "
        "[index.html](index.html)."
    )
    filters = ", ".join(f"{k}={v}" for k, v in cmp.filters.items() if v)
    if filters:
        out.append(f"Filters: {filters}.")
    out.append("")
    if prov.stand_in:
        out += ["> [!WARNING]", "> **Stand-ins and deviations — read this first:**", ">"]
        out += [f"> - {line}" for line in prov.stand_in]
    else:  # only when no record is a stand-in or lists a deviation
        out += ["> [!NOTE]", f"> {NOTHING_OFF_PROTOCOL}"]
    out += [">", *(f"> {line}" for line in prov.on_protocol)]
    out += [f"> The paper's protocol: {content.paper_protocol}.", ""]

    out += ["## Overview", "", f"Column blocks per measurement setup (keys below the table); {LEGEND}.", ""]
    if cmp.tables:
        frame, legend = _tagged_overview(formatted_frame(cmp.overview))
        out += [markdown_table(frame), "", *(f"- {line}" for line in legend), ""]
    else:
        out += ["No evaluation, complexity, latency or throughput records.", ""]

    out += ["## Paper claims: claimed vs measured", ""]
    claims = content.claims
    out.append(claims.summary() if claims else NO_CLAIMS)
    out.append("")
    if claims is not None and not claims.frame.empty:
        shown = claims.display_frame(SHOWN_VERDICTS)
        if len(shown):
            out += [markdown_table(format_claims(shown)), ""]
        rest = claims.folded_frame()
        if len(rest):
            # GitHub renders <details>; the table inside needs blank lines around it
            out += ["<details>", f"<summary>{len(rest)} claim(s) that no record here covers</summary>", ""]
            out += [markdown_table(format_claims(rest)), "", "</details>", ""]

    out += table2_markdown(cmp.records)  # only when a baseline and its FDR variant were measured
    out += ["## Tables per measurement setup", ""]
    for t in cmp.tables:
        out += [f"### {t.title}", ""]
        out += [f"- {n}" for n in t.notes]
        out += ["", markdown_table(formatted_frame(t)), ""]

    out += error_analysis_markdown(error_analysis_blocks(cmp.records))  # only with such records
    out += precision_markdown(cmp.records)  # only with reduced-precision cells
    out += ["## Plots", ""]
    for p in content.plots.plots:
        rel_png = p.png.relative_to(content.out_dir).as_posix()
        rel_svg = p.svg.relative_to(content.out_dir).as_posix()
        out += [f"![{p.title}]({rel_png})", "", f"{p.caption} ([SVG]({rel_svg}))", ""]
    if content.plots.skipped:
        out += ["Plots not drawn:", ""] + [f"- {s.reason}" for s in content.plots.skipped] + [""]

    out += ["## Failed and skipped tasks", "", _table(prov.problems, "None: every record is `ok`."), ""]
    out += ["## Provenance", "", "### Environment", "", _table(prov.environments, "Not recorded."), ""]
    out += ["### Models and weights", "", _table(prov.models, "None."), ""]
    out += ["### Datasets", "", _table(prov.datasets, "No record used a dataset."), ""]
    out += ["### Deviations from the paper's protocol", "", _table(prov.deviations, "None recorded."), ""]
    out += ["### Notes from the records", "", _table(prov.notes, "None."), ""]
    return "\n".join(out)
