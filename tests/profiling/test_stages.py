"""Time per stage: each stage timed on its own with its samples; what a protocol counts; a stage that
cannot be timed is "not measured", never 0."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from profiling_toys import ToyAdapter

from dfine_bench.adapters.base import Detections, RawOutputs
from dfine_bench.config.schema import BackendConfig
from dfine_bench.config.settings import ProfileSettings
from dfine_bench.profiling import profile_model
from dfine_bench.profiling.stages import STAGES, stage_protocol

FAST = ProfileSettings(
    warmup=1,
    iters=6,
    min_iters=5,
    max_time_s=4.0,
    batch_sizes=[1],
    complexity=False,
    throughput=False,
    flops_input_size=[64, 64],
    threads=1,
    stage_iters=6,
)
POST_SLEEP_S = 0.03


class SlowPostToy(ToyAdapter):
    """The toy with a postprocessor that sleeps: its cost must land in postprocess alone."""

    def postprocess(self, outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        time.sleep(POST_SLEEP_S)
        return super().postprocess(outputs, original_sizes)


def _latency(adapter: ToyAdapter, tmp_path: Path, protocol: str = "custom", **kw: object) -> object:
    outs = profile_model(
        adapter, replace(FAST, **kw), BackendConfig(), device="cpu", work_dir=tmp_path, protocol=protocol
    )
    return next(o for o in outs if o.task == "latency")


def test_every_stage_is_timed_on_its_own_and_cpu_copies_are_not_measured(tmp_path: Path) -> None:
    lat = _latency(SlowPostToy(), tmp_path)
    st = lat.details["stages"]
    by = st["by_stage"]
    assert list(by) == list(STAGES)
    for name in ("decode", "preprocess", "forward", "postprocess"):
        assert by[name]["status"] == "ok" and 5 <= len(by[name]["samples_ms"]) <= 6, name
        assert lat.metrics[f"stage_{name}"].value == pytest.approx(float(np.median(by[name]["samples_ms"])))
    for name in ("h2d", "d2h"):
        assert by[name]["status"] == "not measured" and "cpu" in by[name]["reason"]
        assert f"stage_{name}" not in lat.metrics  # not measured is never a 0
    # the sleep is in postprocess only
    assert lat.metrics["stage_postprocess"].value >= POST_SLEEP_S * 1000 * 0.95
    assert lat.metrics["stage_forward"].value < POST_SLEEP_S * 1000 * 0.95
    # timed=model under the custom protocol counts the forward pass alone
    assert st["protocol"] == "model_only" and st["counted"] == ["forward"]
    assert lat.metrics["stages_total"].value == pytest.approx(lat.metrics["stage_forward"].value)


def test_end_to_end_sums_the_means_of_decode_to_postprocess(tmp_path: Path) -> None:
    lat = _latency(ToyAdapter(), tmp_path, protocol="end_to_end")
    st = lat.details["stages"]
    assert st["protocol"] == "end_to_end" and st["statistic"] == "mean"
    assert st["not_measured"] == ["h2d", "d2h"]
    means = [
        float(np.mean(st["by_stage"][s]["samples_ms"]))
        for s in ("decode", "preprocess", "forward", "postprocess")
    ]
    assert st["total_ms"] == pytest.approx(sum(means))
    assert lat.metrics["stages_total"].value == pytest.approx(sum(means))


def test_end_to_end_stages_see_every_image_at_least_once(tmp_path: Path) -> None:
    """A stage's mean is over the evaluation images: with more images than ``stage_iters``, every
    image is timed once (``profiling.num_images`` sets how many the runner samples)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + i, 64, 3), dtype=np.uint8) for i in range(9)]
    outs = profile_model(
        ToyAdapter(),
        replace(FAST, stage_iters=3, min_iters=2),
        BackendConfig(),
        device="cpu",
        work_dir=tmp_path,
        images=images,
        protocol="end_to_end",
    )
    st = next(o for o in outs if o.task == "latency").details["stages"]
    assert st["images"] == 9
    for name in ("decode", "preprocess", "forward", "postprocess"):
        assert len(st["by_stage"][name]["samples_ms"]) >= 9, name


def test_stages_can_be_switched_off(tmp_path: Path) -> None:
    lat = _latency(ToyAdapter(), tmp_path, stages=False)
    assert "stages" not in lat.details and not any(k.startswith("stage") for k in lat.metrics)


@pytest.mark.parametrize(
    ("protocol", "timed", "expected"),
    [
        ("paper_t4", "model", "paper_t4"),
        ("end_to_end", "model", "end_to_end"),
        ("custom", "model", "model_only"),
        ("custom", "model+postprocess", "paper_t4"),
        ("custom", "end-to-end", "end_to_end"),
    ],
)
def test_protocol_selects_the_counted_stages(protocol: str, timed: str, expected: str) -> None:
    assert stage_protocol(protocol, timed) == expected


def test_report_draws_a_stacked_bar_per_model_and_backend(tmp_path: Path) -> None:
    from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup
    from dfine_bench.reporting.plots import make_plots
    from dfine_bench.reporting.tables import build_comparison

    lat = _latency(ToyAdapter(), tmp_path)
    setup = Setup(device="cpu", device_name="CPU X", backend="eager", timed="model")
    rec = ResultRecord(
        "run1",
        "latency-toy",
        "latency",
        ModelInfo(name="toy_prof"),
        setup,
        {},
        lat.metrics,
        details=lat.details,
    )
    plots = make_plots(build_comparison([rec]), None, tmp_path / "plots")
    (stage_plot,) = [p for p in plots.plots if p.kind == "stages"]
    assert stage_plot.png.stat().st_size > 1000 and "CPU X" in stage_plot.title
    assert "Not measured (left out, not 0): host->device (eager); device->host (eager)" in stage_plot.caption


def test_bars_of_different_input_sizes_say_their_size(tmp_path: Path) -> None:
    """One device, two input sizes (the fixture at 320, the others at 640 in the default suite):
    each bar names its size, so a 320x320 bar is not read as a faster 640x640 model."""
    from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup
    from dfine_bench.reporting.stage_plot import stage_bars

    lat = _latency(ToyAdapter(), tmp_path)

    def record(name: str, size: list[int]) -> ResultRecord:
        setup = Setup(device="cpu", device_name="CPU X", backend="eager", timed="model", input_size=size)
        model = ModelInfo(name=name)
        return ResultRecord(
            "run1", f"latency-{name}", "latency", model, setup, {}, lat.metrics, details=lat.details
        )

    ((_, _, caption, _, _),) = stage_bars([record("a", [320, 320]), record("b", [640, 640])], tmp_path)
    assert "Input sizes differ (320x320, 640x640): compare bars of one size." in caption
    ((_, _, same, _, _),) = stage_bars([record("a", [640, 640]), record("b", [640, 640])], tmp_path)
    assert "Input 640x640." in same and "differ" not in same
