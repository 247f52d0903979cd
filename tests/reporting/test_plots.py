"""Plots: PNG + SVG files, units and conditions in titles, one device per plot, skipped when no data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from reporting_helpers import CPU, GPU, claim, claims_table, record, suite_records

from dfine_bench.reporting import build_comparison, make_plots
from dfine_bench.reporting import plots as plots_module
from dfine_bench.reporting.ap_pairing import accuracy_by_dataset, pair_ap
from dfine_bench.reporting.plots import ap_vs_latency
from dfine_bench.reporting.tables import SPEED

SVG = "{http://www.w3.org/2000/svg}"


def svg_text(path: Path) -> str:
    """All text of an SVG (the plots keep text as <text>, not paths)."""
    root = ET.parse(path).getroot()
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def test_every_plot_is_png_and_svg_with_device_units_and_stand_in(tmp_path: Path) -> None:
    cmp = build_comparison(suite_records(generated=True))
    result = make_plots(cmp, None, tmp_path)
    kinds = {p.kind for p in result.plots}
    assert {"ap_vs_latency", "ap_vs_params", "ap_vs_gflops", "latency_vs_batch", "pr_curve"} <= kinds
    for p in result.plots:
        assert p.png.parent == tmp_path and p.svg.parent == tmp_path
        with Image.open(p.png) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        text = svg_text(p.svg)
        assert CPU in text, (p.name, text)  # the device that really ran, in the title
        assert "eager" in text and "fp32" in text
        assert "stand-in: random-init weights / generated data" in text or (
            p.kind == "latency_vs_batch" and "stand-in: random-init weights" in text
        )
        assert "T4" not in text  # nothing here ran on a T4
    units = {p.kind: svg_text(p.svg) for p in result.plots}
    assert "(ms)" in units["ap_vs_latency"] and "AP (%)" in units["ap_vs_latency"]
    assert "parameters (M)" in units["ap_vs_params"] and "GFLOPs" in units["ap_vs_gflops"]
    assert "batch size (images)" in units["latency_vs_batch"] and "images/s" in units["latency_vs_batch"]
    assert "recall" in units["pr_curve"] and "precision" in units["pr_curve"]
    assert "out of memory at batch 8" in units["latency_vs_batch"]
    # claims were not asked for: that plot is skipped with the reason, nothing else is
    assert [s.kind for s in result.skipped] == ["claims"]


def test_ap_vs_latency_never_puts_two_devices_in_one_plot(tmp_path: Path) -> None:
    records = [
        *suite_records(generated=False, real=True),
        record("latency", "dfine_n", {"latency_median": 2.0}, device="cuda", device_name=GPU, real=True),
        record("latency", "dfine_s", {"latency_median": 3.0}, device="cuda", device_name=GPU, real=True),
    ]
    plots = ap_vs_latency(build_comparison(records), tmp_path)
    assert len(plots) == 2
    titles = {p.title for p in plots}
    assert sum(GPU in t for t in titles) == 1 and sum(CPU in t for t in titles) == 1
    gpu_plot = next(p for p in plots if GPU in p.title)
    text = svg_text(gpu_plot.svg)
    assert CPU not in text and "dfine_n" in text and "dfine_s" in text
    assert "rtdetr_r18" not in text  # not measured on the GPU: not drawn there
    assert "stand-in" not in gpu_plot.title  # real weights on COCO


def test_the_pareto_line_joins_the_front_only(tmp_path: Path) -> None:
    # dfine_x is slower and less accurate than dfine_s: off the front
    records = [
        record("evaluation", "dfine_n", {"AP": 40.0}, real=True),
        record("evaluation", "dfine_s", {"AP": 48.0}, real=True),
        record("evaluation", "dfine_x", {"AP": 45.0}, real=True),
        record("latency", "dfine_n", {"latency_median": 3.0}, real=True),
        record("latency", "dfine_s", {"latency_median": 5.0}, real=True),
        record("latency", "dfine_x", {"latency_median": 9.0}, real=True),
    ]
    (plot,) = ap_vs_latency(build_comparison(records), tmp_path)
    root = ET.parse(plot.svg).getroot()
    lines = [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("line2d")]
    paths = [
        p.get("d", "")
        for g in lines
        for p in g.iter(f"{SVG}path")
        if "stroke-width: 1.5" in p.get("style", "")
    ]
    assert len(paths) == 1
    assert paths[0].count("L") == 1  # one segment: dfine_n -> dfine_s, dfine_x is off the front


def test_plots_without_data_are_skipped_with_a_reason(tmp_path: Path) -> None:
    records = [r for r in suite_records() if r.task == "latency"]
    result = make_plots(build_comparison(records), None, tmp_path)
    assert result.plots == []
    reasons = {s.kind: s.reason for s in result.skipped}
    assert set(reasons) == {
        "ap_vs_latency",
        "ap_vs_params",
        "ap_vs_gflops",
        "latency_vs_batch",
        "pr_curve",
        "claims",
    }
    assert "evaluation" in reasons["ap_vs_latency"]
    assert list(tmp_path.glob("*.png")) == [] and list(tmp_path.glob("*.svg")) == []


def test_claims_delta_plot_shows_only_claims_checked_under_their_conditions(tmp_path: Path) -> None:
    records = suite_records()
    claims = claims_table(
        [
            claim("t1-params-n", "dfine_n", "params", 4.0, 3.7, "fail", unit="M"),
            claim("t1-gflops-n", "dfine_n", "gflops", 7.0, 7.1, "pass", unit="GFLOPs"),
            claim("t1-ap-n", "dfine_n", "AP", 42.8, 0.0, "not comparable", reason="random-init weights"),
            claim("t1-lat-n", "dfine_n", "latency_mean", 2.12, None, "not measured"),
        ]
    )
    result = make_plots(build_comparison(records), claims, tmp_path)
    (plot,) = [p for p in result.plots if p.kind == "claims"]
    text = svg_text(plot.svg)
    assert "t1-params-n" in text and "t1-gflops-n" in text
    assert "t1-ap-n" not in text and "t1-lat-n" not in text  # not comparable / not measured: no bar
    assert f"{CPU} · eager · fp32" in text
    assert "% of the claimed value" in text
    # nothing comparable at all: skipped, with the counts
    only_nc = claims_table([claim("x", "dfine_n", "AP", 42.8, 0.0, "not comparable")])
    skipped = make_plots(build_comparison(records), only_nc, tmp_path / "b").skipped
    assert any(s.kind == "claims" and "1 not comparable" in s.reason for s in skipped)


def test_pr_curves_without_precision_values_are_skipped(tmp_path: Path) -> None:
    no_data = {"recall": [0.0, 0.5, 1.0], "precision": [-1.0, -1.0, -1.0]}  # COCO's "no data"
    zeros = {"recall": [0.0, 0.5, 1.0], "precision": [0.0, 0.0, 0.0]}  # real zeros are data
    only_missing = [record("evaluation", "dfine_n", {"AP": 0.0}, details={"pr_curve": no_data})]
    result = make_plots(build_comparison(only_missing), None, tmp_path / "a")
    assert "pr_curve" in {s.kind for s in result.skipped}
    with_zeros = [*only_missing, record("evaluation", "dfine_s", {"AP": 0.0}, details={"pr_curve": zeros})]
    (plot,) = [
        p
        for p in make_plots(build_comparison(with_zeros), None, tmp_path / "b").plots
        if p.kind == "pr_curve"
    ]
    text = svg_text(plot.svg)
    assert "dfine_s" in text and "dfine_n" not in text


def _backend_records() -> list:  # type: ignore[type-arg]
    """Eager AP for both models, ONNX Runtime AP for dfine_n only; latencies on both backends."""
    return [
        record("evaluation", "dfine_n", {"AP": 50.0}, real=True),
        record("evaluation", "dfine_s", {"AP": 55.0}, real=True),
        record("evaluation", "dfine_n", {"AP": 44.0}, real=True, backend="onnxruntime"),
        record("evaluation", "dfine_s", {"AP": 33.0}, real=True, backend="openvino"),  # never borrowed
        *(
            record("latency", m, {"latency_median": ms}, real=True, backend=b)
            for m, ms in (("dfine_n", 10.0), ("dfine_s", 20.0))
            for b in ("eager", "onnxruntime")
        ),
    ]


def test_ap_vs_latency_pairs_each_latency_with_the_ap_of_its_own_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: dict[str, list[tuple[str, float, bool]]] = {}
    real_draw = plots_module.draw_tradeoff

    def spy(points, **kw):  # type: ignore[no-untyped-def]
        drawn[kw["title"].splitlines()[0]] = sorted((p.label, p.y, p.borrowed) for p in points)
        return real_draw(points, **kw)

    monkeypatch.setattr(plots_module, "draw_tradeoff", spy)
    plots = ap_vs_latency(build_comparison(_backend_records()), tmp_path)
    assert len(plots) == 2  # one per speed setup: the second accuracy table is no extra plot
    eager = next(v for k, v in drawn.items() if "· eager ·" in k)
    onnx = next(v for k, v in drawn.items() if "· onnxruntime ·" in k)
    assert eager == [("dfine_n", 50.0, False), ("dfine_s", 55.0, False)]
    # dfine_n: its own ONNX Runtime AP; dfine_s: none measured with onnxruntime -> eager's, marked
    assert onnx == [("dfine_n", 44.0, False), ("dfine_s", 55.0, True)]
    onnx_plot = next(p for p in plots if "onnxruntime" in p.title)
    text = svg_text(onnx_plot.svg)
    assert "hollow: AP of eager fp32 (none measured with onnxruntime fp32)" in text
    assert "hollow" in onnx_plot.title and "hollow" not in next(p for p in plots if p is not onnx_plot).title


def test_pair_ap_prefers_the_same_backend_and_never_borrows_a_third() -> None:
    cmp = build_comparison(_backend_records())
    (tables,) = accuracy_by_dataset(cmp)
    assert tables[0].group is not None and tables[0].group.backend == "eager"  # reference first
    speed = {t.group.backend: t for t in cmp.table(SPEED) if t.group is not None}
    onnx = {k[0]: v for k, v in pair_ap(speed["onnxruntime"], tables).items()}
    assert (onnx["dfine_n"].value, onnx["dfine_n"].backend, onnx["dfine_n"].same_setup) == (
        44.0,
        "onnxruntime",
        True,
    )
    assert (onnx["dfine_s"].value, onnx["dfine_s"].backend, onnx["dfine_s"].same_setup) == (
        55.0,
        "eager",
        False,
    )
    eager = {k[0]: v.value for k, v in pair_ap(speed["eager"], tables).items()}
    assert eager == {"dfine_n": 50.0, "dfine_s": 55.0}  # 33.0 (openvino) is nobody's pair here
