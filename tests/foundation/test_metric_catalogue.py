"""The metric catalogue (issue 12.3): one MetricDef per metric, a registry in the house shape, and
the gate, the claims and the tables deriving what they need from it."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfine_bench.checks.baseline import BaselineError, Entry
from dfine_bench.checks.gate import WORSE, Baseline, RunData, compare, default_tolerances
from dfine_bench.claims.model import load_claims, row_metric_kinds, task_of_metric
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.records import metrics as catalogue
from dfine_bench.records.metrics import (
    ABSOLUTE,
    INFORMATIONAL,
    MetricDef,
    get_metric,
    list_metrics,
    metric,
    register_metric,
    unregister_metric,
)
from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup
from dfine_bench.reporting.tables import build_comparison, task_columns


@pytest.fixture
def temp_metric() -> Iterator[MetricDef]:
    """A plug-in style metric, registered with one call and removed afterwards."""
    d = register_metric(
        MetricDef(
            "zz_test_gap",
            "%",
            False,
            task="evaluation",
            gate=ABSOLUTE,
            tolerance=0.5,
            claim_kind="tolerance",
            label="zz test gap",
            headline=True,
            description="a test metric",
        )
    )
    yield d
    unregister_metric(d.name)


def test_a_metric_without_a_gate_rule_is_an_error() -> None:
    with pytest.raises(TypeError):  # no default: every metric must say how it is gated
        MetricDef("x", "ms", False, task="latency")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"gate rule None.*informational"):
        MetricDef("x", "ms", False, task="latency", gate=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="gate rule 'sometimes'"):
        MetricDef("x", "ms", False, task="latency", gate="sometimes")
    with pytest.raises(ConfigError, match="needs a default tolerance"):
        MetricDef("x", "ms", False, task="latency", gate=catalogue.LATENCY)
    # explicitly not gated is allowed, and says so
    assert not MetricDef("x", "ms", False, task="latency", gate=INFORMATIONAL).gated


def test_every_builtin_metric_has_a_gate_rule_and_the_gate_implements_each() -> None:
    names = list_metrics()
    assert names[:12] == list(catalogue.COCO_STATS)  # catalogue order: pycocotools' stats order
    assert all(get_metric(n).gate in catalogue.GATE_RULES for n in names)
    assert {"params", "params_total", "gflops", "latency_median", "throughput"} <= set(names)


def test_registry_lookup_and_wildcards(temp_metric: MetricDef) -> None:
    assert get_metric("zz_test_gap") is temp_metric
    assert list_metrics("latency_*")[:4] == ["latency_median", "latency_mean", "latency_p90", "latency_p99"]
    assert list_metrics("zz_test_*") == ["zz_test_gap"]
    assert "zz_test_gap" in list_metrics(task="evaluation", gate=ABSOLUTE)
    with pytest.raises(UnknownNameError, match=r"unknown metric 'latency_medain'.*latency_median"):
        get_metric("latency_medain")
    with pytest.raises(ConfigError, match="already registered"):
        register_metric(MetricDef("zz_test_gap", "ms", False, task="latency", gate=INFORMATIONAL))


def test_producers_cannot_write_an_unregistered_metric() -> None:
    with pytest.raises(UnknownNameError, match="unknown metric 'made_up'"):
        metric("made_up", 1.0)
    assert metric("AP", 50.0).unit == "%" and metric("AP", 50.0).higher_is_better


def _entry(metrics: dict[str, float]) -> Entry:
    return Entry("evaluation-m", "evaluation", model={"name": "m"}, metrics=dict(metrics))


def test_the_gate_derives_rule_and_tolerance_from_the_catalogue(temp_metric: MetricDef) -> None:
    assert default_tolerances()["zz_test_gap"] == 0.5
    base = Baseline(entries={"evaluation-m": _entry({"zz_test_gap": 10.0})})
    run = RunData(Path("run"), {}, [], {"evaluation-m": _entry({"zz_test_gap": 9.0})})
    (row,) = compare(base, run).rows
    assert row.metric == "zz_test_gap" and row.verdict == WORSE and "0.5" in row.why
    run_ok = RunData(Path("run"), {}, [], {"evaluation-m": _entry({"zz_test_gap": 9.6})})
    assert compare(base, run_ok).exit_code == 0


def test_a_baseline_metric_outside_the_catalogue_is_an_error_at_start_up() -> None:
    base = Baseline(entries={"evaluation-m": _entry({"mystery": 1.0})})
    run = RunData(Path("run"), {}, [], {"evaluation-m": _entry({"mystery": 1.0})})
    with pytest.raises(BaselineError, match=r"mystery.*register_metric"):
        compare(base, run)


def test_claims_derive_kind_and_task_from_the_catalogue(temp_metric: MetricDef, tmp_path: Path) -> None:
    assert row_metric_kinds()["params"] == "exact" and row_metric_kinds()["fps"] == "hardware"
    assert "gflops_torch" not in row_metric_kinds()  # no claim kind: no row claims on it
    assert task_of_metric("max_batch_size") == "throughput" and task_of_metric("zz_test_gap") == "evaluation"
    path = tmp_path / "c.yaml"
    path.write_text("rows:\n  - {model: dfine_n, source: T1, zz_test_gap: 3.0}\n")
    (claim,) = load_claims(path)
    assert (claim.kind, claim.unit, claim.metric) == ("tolerance", "%", "zz_test_gap")


def test_tables_derive_columns_from_the_catalogue(temp_metric: MetricDef) -> None:
    labels = [c.label for c in task_columns("evaluation")]
    assert labels[:12] == list(catalogue.COCO_STATS) and "zz test gap" in labels
    assert task_columns("latency", 4)[0].label == "latency median bs4 (ms)"
    assert [c.label for c in task_columns("complexity")] == [
        "params (M)",
        "params total (M)",
        "GFLOPs",
        "GFLOPs (torch counter)",
    ]
    rec = ResultRecord(
        run_id="r",
        record_id="evaluation-m",
        task="evaluation",
        model=ModelInfo(name="m"),
        setup=Setup(),
        environment={},
        metrics={"AP": metric("AP", 40.0), "zz_test_gap": metric("zz_test_gap", 2.5)},
    )
    cmp = build_comparison([rec])
    (table,) = cmp.table("accuracy")
    assert table.frame["zz test gap"].tolist() == [2.5]
    assert any(c[1] == "zz test gap" for c in cmp.overview.frame.columns)  # headline: in the overview


def test_plugins_register_metrics_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package declaring ``[project.entry-points."dfine_bench.metrics"]`` adds its metrics; one whose
    metric has no gate rule is contained: its load error is recorded, the rest loads."""
    site = tmp_path / "site"
    (site / "metric_plugin").mkdir(parents=True)
    (site / "metric_plugin" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from dfine_bench.records.metrics import INFORMATIONAL, MetricDef, register_metric

            def register():
                register_metric(MetricDef("plugin_metric", "ms", None, "latency", INFORMATIONAL))
            """
        )
    )
    dist = site / "metric_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: metric-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dfine_bench.metrics]\nmine = metric_plugin:register\n")
    monkeypatch.syspath_prepend(str(site))
    catalogue.reload()
    try:
        assert "plugin_metric" in list_metrics()
        assert get_metric("plugin_metric").gate == INFORMATIONAL
    finally:
        unregister_metric("plugin_metric")
        sys.modules.pop("metric_plugin", None)
    (dist / "entry_points.txt").write_text("[dfine_bench.metrics]\nbad = metric_plugin:bad\n")
    (site / "metric_plugin" / "__init__.py").write_text(
        "from dfine_bench.records.metrics import MetricDef\n\n"
        "def bad():\n    MetricDef('ungated', 'ms', None, 'latency', gate='')\n"
    )
    catalogue.reload()
    try:
        # contained: the plug-in's error is recorded (``list`` shows it), the catalogue still loads
        assert "ungated" not in list_metrics() and "AP" in list_metrics()
        assert "'ungated' has gate rule ''" in catalogue.load_errors()["entry point bad"]
    finally:
        sys.modules.pop("metric_plugin", None)
        monkeypatch.undo()
        catalogue.reload()
