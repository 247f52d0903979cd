"""The committed example report under reports/example/ is current and whole, and its numbers are
the numbers of the records it was built from (committed under results/example-source/).

Issue 19: this test used to check only a version string, so a report whose tables no longer
matched its records (or what the report code makes of them) passed. Now the report is rebuilt from
the committed records with the report code of this checkout, and every table line (overview,
per-conditions tables, claims, provenance) must be the committed one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dfine_bench
from dfine_bench.records import load_records
from dfine_bench.reporting.report import build_report

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "reports" / "example"
SOURCE = ROOT / "results" / "example-source"
#: The title the example is rendered with (reports/README.md gives the command).
TITLE_LINE = re.compile(r"^# (.+)$", re.MULTILINE)
REGENERATE = "regenerate reports/example from results/example-source (reports/README.md)"


def _tables(markdown: str) -> list[str]:
    """Every markdown table line, in order: what the report states as numbers and verdicts."""
    return [line for line in markdown.splitlines() if line.startswith("|")]


@pytest.fixture(scope="module")
def committed() -> str:
    return (EXAMPLE / "README.md").read_text(encoding="utf-8")


def test_example_report_is_from_this_version_and_links_resolve(committed: str) -> None:
    html = (EXAMPLE / "index.html").read_text(encoding="utf-8")
    made_by = re.search(r"by dfine-bench (\S+) from (\d+) record\(s\) of run\(s\) (\S+)\.", committed)
    assert made_by and made_by.group(1) == dfine_bench.__version__, REGENERATE
    records = load_records([SOURCE], strict=True)
    assert int(made_by.group(2)) == len(records) and made_by.group(3) == "example-source", REGENERATE
    links = re.findall(r"\]\(([^)#]+)\)", committed)
    assert any(link.startswith("plots/") for link in links)
    missing = [link for link in links if not link.startswith("http") and not (EXAMPLE / link).exists()]
    assert not missing, missing
    # it says plainly what was a stand-in, in both renderings
    for text in (committed, html):
        assert "Random-init weights" in text and "Generated data instead of COCO val2017" in text


@pytest.mark.slow  # renders the whole report (plots included); .ci/run runs it (pytest -m slow)
def test_example_tables_are_the_records_numbers(committed: str, tmp_path: Path) -> None:
    records = load_records([SOURCE], strict=True)
    title = TITLE_LINE.search(committed)
    assert title
    rebuilt = build_report(records, tmp_path / "example", title=title.group(1))
    expected = _tables((rebuilt / "README.md").read_text(encoding="utf-8"))
    got = _tables(committed)
    assert len(expected) > 20, "the rebuilt report has (almost) no tables"
    differ = [(e, g) for e, g in zip(expected, got) if e != g]
    assert len(got) == len(expected) and not differ, f"{REGENERATE}; first difference: {differ[:1]}"
