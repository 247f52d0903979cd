"""The committed example report under reports/example/ is current and whole."""

from __future__ import annotations

import re
from pathlib import Path

import dfine_bench

EXAMPLE = Path(__file__).resolve().parents[2] / "reports" / "example"


def test_example_report_is_from_this_version_and_links_resolve() -> None:
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    html = (EXAMPLE / "index.html").read_text(encoding="utf-8")
    made_by = re.search(r"by dfine-bench (\S+) from", readme)
    assert made_by and made_by.group(1) == dfine_bench.__version__, (
        "regenerate reports/example (reports/README.md)"
    )
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    assert any(link.startswith("plots/") for link in links)
    missing = [link for link in links if not link.startswith("http") and not (EXAMPLE / link).exists()]
    assert not missing, missing
    # it says plainly what was a stand-in, in both renderings
    for text in (readme, html):
        assert "Random-init weights" in text and "Generated data instead of COCO val2017" in text
