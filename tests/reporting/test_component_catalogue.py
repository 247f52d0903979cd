"""Issue 19: every process that reads records sees the same catalogue, whichever module defined an
entry. An evaluator plug-in defines its metric at the top of its own module (as the catalogue's
docstring says to) and adds a task of its own; fresh ``compare``, ``report`` and ``check``
processes know the metric, give its records a table (no edit in ``reporting/``) and gate it.
The run summary's AP is the COCO record's, whatever other evaluator of task ``evaluation`` ran.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import FreshCli
from reporting_helpers import record

from dfine_bench.checks.baseline import load_run, save_baseline
from dfine_bench.records import metrics
from dfine_bench.records.store import RunStore

PLUGIN = """
from dfine_bench.records.metrics import ABSOLUTE, MetricDef, register_metric

# the metric lives with the evaluator that produces it, in a task of its own
register_metric(
    MetricDef("zz_mean_dets", "count", True, "zz_detection_stats", ABSOLUTE, tolerance=0.5,
              label="mean dets", headline=True, description="detections per image", valid=(0.0, 1000.0))
)


class MeanDets:
    name, task, key = "zz_mean_dets", "zz_detection_stats", "mean_dets"

    def __init__(self, context):
        self.context = context


def register():
    from dfine_bench.evaluation import register_evaluator

    register_evaluator("zz_mean_dets", MeanDets, task="zz_detection_stats")
"""


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    (site / "zz_dets_eval").mkdir(parents=True)
    (site / "zz_dets_eval" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "zz_dets_eval-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zz-dets-eval\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[dfine_bench.evaluators]\nzz_mean_dets = zz_dets_eval:register\n")
    monkeypatch.syspath_prepend(str(site))
    metrics.reload()
    yield site
    metrics.unregister_metric("zz_mean_dets")
    sys.modules.pop("zz_dets_eval", None)
    monkeypatch.undo()
    metrics.reload()


def _write_run(run_dir: Path, mean_dets: float) -> Path:
    store = RunStore(run_dir)
    store.records_dir.mkdir(parents=True, exist_ok=True)
    store.write_meta({"run_id": run_dir.name, "status": "complete", "suite": "zz"})
    for r in (
        record("evaluation", "dfine_n", {"AP": 40.0}, run_id=run_dir.name),
        record("zz_detection_stats", "dfine_n", {"zz_mean_dets": mean_dets}, run_id=run_dir.name),
    ):
        store.write_record(r)
    return run_dir


def test_metric_defined_in_its_evaluators_module_works_in_fresh_processes(
    plugin_site: Path, tmp_path: Path, fresh_cli: FreshCli
) -> None:
    assert metrics.get_metric("zz_mean_dets").table == "zz_detection_stats"  # its own task's table
    base = _write_run(tmp_path / "results" / "base", 3.0)
    worse = _write_run(tmp_path / "results" / "worse", 1.0)

    shown = fresh_cli(plugin_site, tmp_path, "compare", str(base), "--no-claims")
    assert shown.returncode == 0, shown.stderr
    assert "== zz detection stats ==" in shown.stdout  # a table for the new task
    table = shown.stdout.split("== zz detection stats ==")[1]
    assert "mean dets" in table and "3.00" in table

    report = fresh_cli(
        plugin_site, tmp_path, "report", str(base), "--out", str(tmp_path / "rep"), "--no-claims"
    )
    assert report.returncode == 0, report.stderr
    assert "mean dets" in (tmp_path / "rep" / "README.md").read_text()

    baseline = save_baseline(load_run(base), tmp_path / "b.json")  # here: the plug-in is loaded
    same = fresh_cli(plugin_site, tmp_path, "check", "--baseline", str(baseline), str(base))
    assert same.returncode == 0, same.stdout + same.stderr
    dropped = fresh_cli(plugin_site, tmp_path, "check", "--baseline", str(baseline), str(worse))
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr  # the plug-in's metric is gated
    assert "zz_mean_dets" in dropped.stdout and "WORSE" in dropped.stdout


def test_run_summary_takes_the_ap_of_the_coco_record() -> None:
    """An evaluator with task="evaluation" (the CONTRIBUTING example) writes a record without AP;
    the summary must still show the COCO record's AP, not a blank."""
    from dfine_bench.cli.summary import summary_frame
    from dfine_bench.execution.executor import RunOutcome

    other = record("evaluation", "dfine_n", {"images_seen": 5.0}, key="mean_dets")
    coco = record("evaluation", "dfine_n", {"AP": 41.5})
    onnx = record("evaluation", "dfine_n", {"AP": 12.0}, backend="onnxruntime", key="onnx")
    frame = summary_frame(RunOutcome(run_dir=Path("r"), records=[other, onnx, coco]))
    assert frame["AP"].tolist() == [41.5]
