"""The HTML report in a real headless browser: no console errors, no network, tables and images shown.

Drives the system's Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) through
Playwright's bundled driver, never a downloaded browser. Skipped, with the reason, where either
is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from reporting_helpers import suite_records

from dfine_bench.reporting import build_report

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: [loaded, natural width, shown width] of each image; body-row count of each table
IMAGES_JS = (
    "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
)
TABLE_ROWS_JS = (
    "Array.from(document.querySelectorAll('table')).map(t => t.querySelectorAll('tbody tr').length)"
)


def _chromium() -> str:
    for candidate in (os.environ.get("DFINE_BENCH_CHROMIUM"), "chromium", "chromium-browser"):
        path = candidate and shutil.which(candidate)
        if path:
            return path
    pytest.skip("no chromium on this machine (apt-get install -y chromium): the browser test needs one")


def _claims() -> str | None:
    try:
        from dfine_bench.claims import check_claims  # noqa: F401
    except ImportError:
        return None
    return "dfine_paper"


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    executable = _chromium()
    out = build_report(suite_records(generated=True), tmp_path / "report", claims=_claims(), title="browser")
    num_pngs = len(list((out / "plots").glob("*.png")))
    assert num_pngs >= 5

    problems: list[str] = []
    outside: list[str] = []
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:

            def route(r: Any) -> None:
                if r.request.url.startswith(("file:", "data:")):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on(
                "console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}")
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:100]}"))
            page.goto(out.joinpath("index.html").as_uri(), wait_until="load")

            images = page.evaluate(IMAGES_JS)
            rows = page.evaluate(TABLE_ROWS_JS)
            callout = page.locator("#stand-ins")
            callout_text = callout.inner_text()
            callout_box = callout.bounding_box()
            overview_cells = page.locator("#overview tbody td").count()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            context.close()

    assert problems == []
    assert outside == []  # the page asked for nothing outside itself
    assert len(images) == num_pngs
    for complete, natural_width, shown_width in images:
        assert complete and natural_width > 0 and shown_width > 0
    assert len(rows) >= 8 and all(n > 0 for n in rows)
    assert overview_cells > 0
    assert "Random-init weights" in callout_text and "Generated data" in callout_text
    assert callout_box is not None and callout_box["height"] > 50 and callout_box["y"] < 400  # near the top
    assert (tmp_path / "report.png").stat().st_size > 10_000
