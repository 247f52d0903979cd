"""build_report: a self-contained index.html, a README.md whose links resolve, provenance, stand-ins."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from reporting_helpers import (
    ANNOTATIONS_SHA,
    CPU,
    ENV,
    WEIGHTS_SHA,
    claim,
    claims_table,
    record,
    suite_records,
)

from dfine_bench.errors import DfineBenchError
from dfine_bench.records import ResultRecord
from dfine_bench.reporting import build_report
from dfine_bench.reporting import report as report_module
from dfine_bench.reporting.claims_table import ClaimsTable, check_claims_table
from dfine_bench.reporting.provenance import environments_frame, stand_in_statement


class _Resources(HTMLParser):
    """Every URL-bearing attribute, every tag name and the visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if (
                name in ("src", "href", "srcset", "poster", "data", "action", "xlink:href")
                and value is not None
            ):
                self.urls.append((tag, name, value))
            if name == "style" and value:
                self.styles.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def parse_html(path: Path) -> _Resources:
    p = _Resources()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def markdown_links(path: Path) -> list[str]:
    """Targets of every link and image in a markdown file, as a markdown parser sees them."""
    out: list[str] = []

    def walk(tokens: list) -> None:
        for t in tokens:
            if t.type == "link_open":
                out.append(str(t.attrGet("href")))
            elif t.type == "image":
                out.append(str(t.attrGet("src")))
            if t.children:
                walk(t.children)

    walk(MarkdownIt("commonmark").enable("table").parse(path.read_text(encoding="utf-8")))
    return out


@pytest.fixture(scope="module")
def stand_in_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "rep"
    got = build_report(suite_records(generated=True), out, claims=None, title="Stand-in <report> & co")
    assert got == out
    return out


def test_report_files(stand_in_report: Path) -> None:
    out = stand_in_report
    assert (out / "index.html").is_file() and (out / "README.md").is_file()
    pngs = sorted(p.stem for p in (out / "plots").glob("*.png"))
    svgs = sorted(p.stem for p in (out / "plots").glob("*.svg"))
    assert pngs == svgs and len(pngs) >= 5


def test_html_is_self_contained(stand_in_report: Path) -> None:
    page = parse_html(stand_in_report / "index.html")
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.urls, "the page has images and anchors"
    for tag, attr, url in page.urls:
        if attr == "src":
            assert url.startswith("data:image/png;base64,"), (tag, url[:60])
        else:
            assert url.startswith("#"), (tag, attr, url)  # in-page anchors only
    css = "\n".join(page.styles)
    assert "url(" not in css and "@import" not in css
    images = [u for t, a, u in page.urls if t == "img"]
    assert len(images) == len(list((stand_in_report / "plots").glob("*.png")))
    html = (stand_in_report / "index.html").read_text()
    assert "Stand-in &lt;report&gt; &amp; co" in html  # the title is escaped, not injected
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)


def test_markdown_links_resolve(stand_in_report: Path) -> None:
    links = markdown_links(stand_in_report / "README.md")
    images = [link for link in links if link.endswith(".png")]
    assert len(images) == len(list((stand_in_report / "plots").glob("*.png")))
    for link in links:
        assert not link.startswith(("http:", "https:", "/")), link
        assert (stand_in_report / link).is_file(), link
    text = (stand_in_report / "README.md").read_text()
    assert "| model | family | weights | stand-in |" in text  # tables render as pipe tables
    # the overview's column blocks are keyed, and each key names its device · backend · dtype
    assert "latency median (ms) [S1]" in text and f"- [S1] {CPU} · eager · fp32" in text


def test_stand_ins_are_stated_plainly_in_both_files(stand_in_report: Path) -> None:
    page = parse_html(stand_in_report / "index.html")
    visible = " ".join(" ".join(page.text).split())
    md = (stand_in_report / "README.md").read_text()
    for text, overview in ((visible, "Overview One row per model"), (md, "## Overview")):
        assert "Random-init weights" in text and "dfine_n, dfine_s, rtdetr_r18" in text
        assert "Generated data instead of COCO val2017" in text
        assert f"Speed not measured as in the paper: ran on {CPU}, not an NVIDIA T4" in text
        assert "PyTorch eager fp32, not TensorRT FP16" in text
        assert "Nothing here is a stand-in" not in text
        assert text.index("Random-init weights") < text.index(overview)  # before any table
    # "T4" only ever appears as the paper's device, never as a label of these numbers
    for m in re.finditer(r"T4", visible):
        around = visible[max(0, m.start() - 100) : m.end()]
        assert "NVIDIA T4" in around and ("not" in around or "paper" in around), around


def test_provenance_is_in_the_report(stand_in_report: Path) -> None:
    html = (stand_in_report / "index.html").read_text()
    md = (stand_in_report / "README.md").read_text()
    for text in (html, md):
        assert ENV["git_revision"] in text and ENV["torch"] in text and ENV["python"] in text
        assert CPU in text
        assert "ran on Test CPU 9000, not an NVIDIA T4" in text  # the records' deviations
        assert "fixed random input, not COCO images" in text
        assert "faster_coco_eval" in text


def test_real_weights_on_the_paper_device_say_so(tmp_path: Path) -> None:
    t4 = "Tesla T4"
    records = [
        record("evaluation", "dfine_s", {"AP": 48.5}, real=True),
        record(
            "latency", "dfine_s", {"latency_median": 3.49}, real=True, device="cuda", device_name=t4,
            backend="tensorrt", dtype="fp16",
        ),
    ]  # fmt: skip
    records[1].setup.deviations = []  # on the protocol: what the profiler writes with COCO images as input
    out = build_report(records, tmp_path / "r", claims=None)
    md = (out / "README.md").read_text()
    assert WEIGHTS_SHA in md and ANNOTATIONS_SHA in md and "org/dfine_s_coco" in md
    assert "Random-init" not in md and "Generated data" not in md
    assert f"Measured under the paper's protocol on {t4}" in md
    assert "not an NVIDIA T4" not in md
    assert "Nothing here is a stand-in or off the paper's protocol" in md  # no record lists a deviation


def test_no_records_is_an_error_not_an_empty_report(tmp_path: Path) -> None:
    with pytest.raises(DfineBenchError, match=r"no records.*dfine-bench run"):
        build_report([], tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_missing_plots_are_noted_and_stale_ones_removed(tmp_path: Path) -> None:
    out = tmp_path / "r"
    build_report(suite_records(), out, claims=None)
    assert list((out / "plots").glob("ap-vs-latency*.png"))
    only_speed = [r for r in suite_records() if r.task == "latency"]
    build_report(only_speed, out, claims=None)
    assert list((out / "plots").glob("*")) == []  # plots of the earlier report are gone
    for name in ("index.html", "README.md"):
        text = (out / name).read_text()
        assert "AP vs latency: needs evaluation (AP)" in text
        assert "precision-recall curves: needs evaluation records" in text
    assert "<img" not in (out / "index.html").read_text()


def test_claims_table_is_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering of a claims table in the contract's columns (the checker is tested with its package)."""
    table = claims_table(
        [
            claim("table1-dfine_n-params", "dfine_n", "params", 4.0, 3.7, "fail", unit="M"),
            claim(
                "table1-dfine_n-AP",
                "dfine_n",
                "AP",
                42.8,
                0.0,
                "not comparable",
                unit="%",
                reason="random-init",
            ),
            claim(
                "table1-dfine_x-AP", "dfine_x", "AP", 59.3, None, "not measured", unit="%", reason="no record"
            ),
        ],
        name="dfine_paper",
    )
    asked: list[str | None] = []

    def fake(records: list, claims: str | None) -> ClaimsTable:
        asked.append(claims)
        return table

    monkeypatch.setattr(report_module, "check_claims_table", fake)
    out = build_report(suite_records(), tmp_path / "r", claims="dfine_paper")
    assert asked == ["dfine_paper"]
    html = (out / "index.html").read_text()
    assert '<td class="verdict-fail">fail</td>' in html and "not comparable" in html
    assert "table1-dfine_n-params" in html and "1 fail, 1 not comparable, 1 not measured" in html
    md = (out / "README.md").read_text()
    # a not-comparable claim shows its measured value and no delta; the verdict says why
    assert "| table1-dfine_n-AP | Table 1 | dfine_n | AP | % | 42.8 | 0 | — | not comparable |" in md
    main_table, folded = md.split("<summary>1 claim(s) that no record here covers</summary>")
    assert "table1-dfine_x-AP" in folded and "table1-dfine_x-AP" not in main_table
    assert (out / "plots" / "claims-deltas-dfine-paper.png").is_file()


def test_with_the_real_claims_checker(tmp_path: Path) -> None:
    claims = pytest.importorskip("dfine_bench.claims")
    if not hasattr(claims, "check_claims"):
        pytest.skip("dfine_bench.claims has no check_claims yet")
    out = build_report(suite_records(), tmp_path / "r", claims="dfine_paper")
    md = (out / "README.md").read_text()
    assert "claims 'dfine_paper':" in md and "checked" in md
    # random-init weights on generated data: no AP claim may pass
    frame = claims.claims_frame(claims.check_claims("dfine_paper", suite_records()))
    assert not ((frame["metric"] == "AP") & (frame["verdict"] == "pass")).any()


def test_skipped_speed_is_not_described_as_measured(tmp_path: Path) -> None:
    records = [
        record("complexity", "dfine_n", {"params": 3.7}, real=True),
        record("latency", "dfine_n", {}, real=True, backend="tensorrt", dtype="fp16", status="skipped",
               reason="TensorRT is not installed"),
    ]  # fmt: skip
    md = (build_report(records, tmp_path / "r", claims=None) / "README.md").read_text()
    assert "Speed not measured as in the paper" not in md  # its deviations are in the provenance only
    assert "TensorRT is not installed" in md  # listed under failed and skipped tasks
    assert "| skipped |" in md


def _real(task: str, name: str, metrics: dict[str, float], deviations: list[str], **kw: Any) -> ResultRecord:
    """A record with released weights on the paper's device and backend, listing ``deviations``."""
    kw = {"device": "cuda", "device_name": "Tesla T4", "backend": "tensorrt", "dtype": "fp16", **kw}
    r = record(task, name, metrics, real=True, **kw)
    r.setup.deviations = list(deviations)
    return r


def test_deviations_of_every_record_are_stated_and_nothing_else_claims_the_protocol(tmp_path: Path) -> None:
    """Released weights, a T4 and TensorRT FP16 are still off the protocol at 320x320 or timed end to end."""
    subset = "coco_val2017 with 500 images, not the 5000 of COCO val2017"
    records = [
        _real("evaluation", "dfine_s", {"AP": 40.1}, [subset, "input 320x320, not 640x640"]),
        _real("complexity", "dfine_s", {"params": 10.2}, ["counted at 320x320, not 640x640"]),
        _real("latency", "dfine_s", {"latency_median": 3.0}, ["timed end-to-end, not the model alone"]),
        _real("latency", "dfine_n", {"latency_median": 2.0}, []),
    ]  # fmt: skip
    statement = stand_in_statement(records)
    assert statement == [
        "AP not measured as in the paper: coco_val2017 with 500 images, not the 5000 of COCO val2017; "
        "input 320x320, not 640x640.",
        "Params and GFLOPs not measured as in the paper: counted at 320x320, not 640x640.",
        "Speed not measured as in the paper: timed end-to-end, not the model alone (dfine_s only).",
    ]
    out = build_report(records, tmp_path / "r", claims=None)
    md = (out / "README.md").read_text()
    visible = " ".join(" ".join(parse_html(out / "index.html").text).split())
    for text in (md, visible):
        assert "Nothing here is a stand-in" not in text
        assert "not measured as in the paper: counted at 320x320" in text
        assert "timed end-to-end, not the model alone" in text
        assert "Measured under the paper's protocol on Tesla T4: 1 speed record(s)" in text
    assert "> [!WARNING]" in md
    # one deviation anywhere is enough; none anywhere is the only case for the "nothing here" line
    for i in range(3):
        alone = [r if j == i else _real(r.task, r.model.name, {}, []) for j, r in enumerate(records)]
        assert stand_in_statement(alone), records[i].task
    clean = [_real(r.task, r.model.name, {}, []) for r in records]
    assert stand_in_statement(clean) == []
    md = (build_report(clean, tmp_path / "clean", claims=None) / "README.md").read_text()
    assert "> [!NOTE]" in md and "Nothing here is a stand-in or off the paper's protocol" in md


def test_statement_says_which_tasks_and_models_a_deviation_concerns() -> None:
    lat = record("latency", "dfine_n", {"latency_median": 10.0})
    tput = record("throughput", "dfine_s", {"throughput": 40.0}, batch_size=4)
    failed = record("latency", "rtdetr_r18", {}, device_name="Other CPU", status="failed", reason="boom")
    (_, speed) = stand_in_statement([lat, tput, failed])
    assert speed.startswith(f"Speed not measured as in the paper: ran on {CPU}, not an NVIDIA T4; ")
    assert "batch size 4, not 1 (throughput of dfine_s)" in speed
    assert "Other CPU" not in speed  # a failed record measured nothing


def test_hostname_is_never_published(tmp_path: Path) -> None:
    records = suite_records()
    for r in records:
        r.environment["hostname"] = "build-host-7f3a"
    assert "hostname" not in set(environments_frame(records)["field"])
    out = build_report(records, tmp_path / "r", claims=None)
    for name in ("index.html", "README.md"):
        text = (out / name).read_text()
        assert "build-host-7f3a" not in text and "hostname" not in text
        assert ENV["git_revision"] in text  # the rest of the environment is still there


def test_claims_table_is_the_checkers_results() -> None:
    """No "not checked" state is left: a table holds the checker's results, counted by the checker."""
    assert {f.name for f in dataclasses.fields(ClaimsTable)} == {"name", "results", "frame"}
    assert check_claims_table(suite_records(), None) is None
    assert check_claims_table(suite_records(), "") is None
    table = claims_table(
        [
            claim("c1", "dfine_x", "AP", 59.3, None, "not measured"),
            claim("c2", "dfine_n", "params", 4.0, 3.7, "fail", unit="M"),
            claim("c3", "dfine_n", "gflops", 7.0, 7.1, "pass", unit="GFLOPs"),
            claim("c4", "dfine_s", "params", 10.0, 10.2, "pass", unit="M"),
        ]
    )
    assert table.counts() == {"pass": 2, "fail": 1, "not measured": 1}  # the checker's verdict order
    assert table.summary() == "claims 'test_claims': 4 checked — 2 pass, 1 fail, 1 not measured"
    assert list(table.frame["claim_id"]) == ["c1", "c2", "c3", "c4"]
    assert claims_table([]).summary() == "claims 'test_claims': no claims"
    assert claims_table([]).display_frame().empty
