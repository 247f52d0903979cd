"""The report's error-analysis section: in markdown and HTML only when error-analysis records exist."""

from __future__ import annotations

from pathlib import Path

from reporting_helpers import error_analysis_record, suite_records
from test_report import parse_html

from dfine_bench.records import ResultRecord
from dfine_bench.reporting.content import ReportContent
from dfine_bench.reporting.error_analysis_section import error_analysis_blocks
from dfine_bench.reporting.figures import PlotSet
from dfine_bench.reporting.html_report import render_html
from dfine_bench.reporting.labels import FIXTURE_WEIGHTS
from dfine_bench.reporting.markdown_report import render_markdown
from dfine_bench.reporting.provenance import provenance
from dfine_bench.reporting.tables import build_comparison


def _render(records: list[ResultRecord], tmp_path: Path) -> tuple[str, str]:
    """(markdown, html) of a report on ``records``, without drawing plots."""
    content = ReportContent(
        title="t",
        generated_at="2025-01-01T00:00:00+00:00",
        version="0",
        out_dir=tmp_path,
        comparison=build_comparison(records),
        claims=None,
        plots=PlotSet([], []),
        provenance=provenance(records),
    )
    return render_markdown(content), render_html(content)


def _section(markdown: str) -> str:
    start = markdown.index("## Error analysis")
    return markdown[start : markdown.index("\n## ", start + 1)]


def test_no_error_analysis_records_no_section(tmp_path: Path) -> None:
    md, html = _render(suite_records(), tmp_path)
    assert "Error analysis" not in md
    assert "error-analysis" not in html and "Error analysis" not in html


def test_section_in_markdown_with_every_part(tmp_path: Path) -> None:
    records = [*suite_records(), error_analysis_record("dfine_fixture", fixture=True, classes=12, worst=3)]
    md, _ = _render(records, tmp_path)
    section = _section(md)
    assert "### dfine_fixture" in section
    # the fixture's numbers are labelled as the rest of the report labels them
    assert FIXTURE_WEIGHTS in section and "generated data" in section
    for kind in ("classification", "localization", "both", "duplicate", "background", "missed"):
        assert f"| {kind} |" in section
    assert "| duplicate | 3.50 | 13 |" in section  # dAP and count of that type, from the record
    assert "| medium (32²-96² px) | 41.50 |" in section and "| small (< 32² px) | — |" in section
    # 12 classes: the 5 best and the 5 worst, each ranked
    assert "Top 5 classes by AP" in section and "Bottom 5 classes by AP" in section
    top = section[section.index("Top 5") : section.index("Bottom 5")]
    bottom = section[section.index("Bottom 5") :]
    assert "class_00" in top and "class_11" not in top and "class_05" not in top
    assert "class_11" in bottom and "class_00" not in bottom
    assert bottom.index("class_11") < bottom.index("class_10")
    # the worst images: id, file and why, worst first
    assert "The 3 worst images" in section
    assert "| 1 | 100 | img_100.png | 3.5 | 1 background, 2 missed |" in section
    assert section.index("img_100.png") < section.index("img_101.png") < section.index("img_102.png")


def test_section_in_html_with_stand_in_label(tmp_path: Path) -> None:
    records = [*suite_records(), error_analysis_record("dfine_n", classes=3)]
    _, html = _render(records, tmp_path)
    assert 'id="error-analysis"' in html and 'href="#error-analysis"' in html
    page = html[html.index('id="error-analysis"') : html.index('id="plots"')]
    assert "dfine_n" in page and "random-init weights" in page and "generated data" in page
    assert "Classes by AP" in page and "Bottom" not in page  # 3 classes: one table
    assert "img_101.png" in page and "dAP per error type" in page
    text = " ".join(parse_html_text(html))
    assert "Error analysis" in text


def parse_html_text(html: str) -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "index.html"
        p.write_text(html, encoding="utf-8")
        return parse_html(p).text


def test_backends_get_their_own_block_and_failures_say_why(tmp_path: Path) -> None:
    records = [
        error_analysis_record("dfine_n", backend="onnxruntime"),
        error_analysis_record("dfine_n"),
        error_analysis_record("dfine_s", status="skipped"),
    ]
    blocks = error_analysis_blocks(records)
    assert [b.title for b in blocks] == ["dfine_n", "dfine_n · onnxruntime fp32", "dfine_s"]
    assert blocks[2].problem == "skipped: tidecv is not installed" and blocks[2].dap.empty
    md, html = _render(records, tmp_path)
    assert "### dfine_n · onnxruntime fp32" in _section(md)
    assert "No analysis: skipped: tidecv is not installed" in md and "No analysis" in html
