"""Issue 19, "done when": the four extensions, each in a scratch plug-in package, work in ``run``,
``compare``, ``report``, ``baseline save`` and ``check``, each command a fresh process.

The package (written into ``tmp_path``, found through ``PYTHONPATH`` and its ``*.dist-info``
entry points, as an installed one is) touches no file of dfine-bench's:

* a backend, ``zz_eager``: the adapter's export module in fp32 on the CPU, with an option of its
  own (in its fingerprint by default) and no YAML file (``suite.backends`` names it all the same);
* an evaluator with a task of its own, ``zz_detection_stats``, and its metric ``zz_mean_dets``
  declared at the top of the evaluator's module;
* a model family, ``zz_dfine_256``: the D-FINE-N architecture (random-init) at a native input
  size of 256x256, so its params/GFLOPs are counted there (not at 640x640).

Slow (a whole run plus four more CLI processes): ``.ci/run``'s slow line runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import FreshCli

pytestmark = pytest.mark.slow

TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
MODEL, BACKEND, EVALUATOR, TASK, METRIC = (
    "zz_dfine_256",
    "zz_eager",
    "zz_mean_dets",
    "zz_detection_stats",
    "zz_mean_dets",
)

BACKEND_MODULE = '''
"""A trivial eager-like backend: the adapter's export module, fp32, on the CPU."""
import copy

from dfine_bench.backends import BackendRunner, BaseBackend, Option, register_backend


class ZzEager(BaseBackend):
    name = "zz_eager"
    description = "scratch plug-in: the export module in fp32 on the CPU"
    display_name = "zz eager"
    packages = ("torch",)
    devices = {"cpu": ("fp32",)}
    options = {"flavour": Option("plain", "changes nothing; shows up in the fingerprint", str)}

    def build(self, adapter, spec, ctx):
        import torch

        module = copy.deepcopy(adapter.export_module()).float().eval()

        def call(x):
            with torch.inference_mode():
                return tuple(module(x))

        return BackendRunner(
            name=self.name, dtype=spec.dtype, device=ctx.device, prepare=lambda x: x.to("cpu", torch.float32),
            call=call, to_torch=lambda outs: tuple(outs), info={},
        )

    def describe(self):
        return {"zz_eager_version": "0.1"}


def register():
    register_backend(ZzEager(), origin="zz_ext")
'''

EVALUATOR_MODULE = '''
"""An evaluator with a task of its own; its metric is declared here, with it."""
from dfine_bench.evaluation import EvaluatorResult, register_evaluator
from dfine_bench.records.metrics import ABSOLUTE, MetricDef, metric, register_metric

register_metric(
    MetricDef("zz_mean_dets", "count", True, "zz_detection_stats", ABSOLUTE, tolerance=0.5,
              label="mean dets", description="detections per image", valid=(0.0, 1000.0))
)


class MeanDets:
    name, task, key = "zz_mean_dets", "zz_detection_stats", "mean_dets"

    def __init__(self, context):
        self.context = context
        self.reset()

    def reset(self):
        self.images, self.n = 0, 0

    def process(self, inputs, outputs):
        self.images += len(inputs)
        self.n += sum(len(rows) for rows in outputs)

    def evaluate(self):
        return EvaluatorResult(metrics={"zz_mean_dets": metric("zz_mean_dets", self.n / max(self.images, 1))})


def register():
    register_evaluator("zz_mean_dets", MeanDets, task="zz_detection_stats", description="dets per image")
'''

MODEL_MODULE = '''
"""A model family with its own native input size: D-FINE-N (random-init) at 256x256."""
from dfine_bench.adapters import ModelSpec, register_model
from dfine_bench.adapters.dfine import dfine_family
from dfine_bench.adapters.hf_common import build_adapter

SPEC = ModelSpec(
    name="zz_dfine_256", family="dfine", input_size=(256, 256), num_classes=80, label_set="coco80",
    fdr=True, fdr_bins=32, go_lsd=True, num_queries=300, detections_per_image=300,
    weights_formats=("random-init",), description="scratch plug-in: D-FINE-N at 256x256",
    extra={"feat_strides": [16, 32]},
)


def _factory(spec, *, weights="random-init", **options):
    return build_adapter(spec, dfine_family("n"), weights="random-init", **options)


def register():
    register_model(SPEC, _factory, origin="zz_ext")
'''

ENTRY_POINTS = """\
[dfine_bench.backends]
zz_eager = zz_ext.backend:register

[dfine_bench.evaluators]
zz_mean_dets = zz_ext.evals:register

[dfine_bench.adapters]
zz_dfine_256 = zz_ext.models:register
"""


def _write_site(site: Path) -> Path:
    pkg = site / "zz_ext"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""A scratch dfine-bench plug-in package."""\n')
    for name, text in (("backend", BACKEND_MODULE), ("evals", EVALUATOR_MODULE), ("models", MODEL_MODULE)):
        (pkg / f"{name}.py").write_text(textwrap.dedent(text))
    dist = site / "zz_ext-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zz-ext\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (dist / "top_level.txt").write_text("zz_ext\n")
    return site


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_four_extensions_work_in_run_compare_report_and_check(tmp_path: Path, fresh_cli: FreshCli) -> None:
    site = _write_site(tmp_path / "site")
    work = tmp_path / "work"
    work.mkdir()

    _ok(
        fresh_cli(
            site,
            work,
            "run",
            "--suites-dir",
            str(TOY_SUITES),
            "suite=toy_quick",
            f"suite.models=[{MODEL}]",
            f"suite.backends=[eager,{BACKEND}]",
            f"evaluation.evaluators=[coco,{EVALUATOR}]",
            "profiling.flops_input_size=null",  # each model's own size (toy_quick sets one)
            "profiling.throughput=false",
            "profiling.stages=false",
            "dataset.num_images=3",
            "output.run_id=ext",
        )
    )
    run_dir = work / "results" / "ext"
    records = {p.stem: json.loads(p.read_text()) for p in (run_dir / "records").glob("*.json")}
    bad = {k: (r["status"], r["reason"]) for k, r in records.items() if r["status"] != "ok"}
    assert not bad, bad
    # the model: params/GFLOPs at its native 256x256
    assert records[f"complexity-{MODEL}-256x256"]["setup"]["input_size"] == [256, 256]
    # the backend: its own latency record, its option and describe() facts in its fingerprint
    (latency,) = [r for r in records.values() if r["task"] == "latency" and r["setup"]["backend"] == BACKEND]
    assert latency["metrics"]["latency_median"]["value"] > 0
    fingerprint = latency["setup"]["extra"]["fingerprint"]
    assert (fingerprint["option.flavour"], fingerprint["zz_eager_version"]) == ("plain", "0.1")
    # the evaluator: a record of its own task, with its metric
    (stats,) = [r for r in records.values() if r["task"] == TASK]
    assert stats["metrics"][METRIC]["value"] > 0

    shown = _ok(fresh_cli(site, work, "compare", str(run_dir), "--no-claims"))
    assert "== zz detection stats" in shown, shown  # the new task's table, no edit in reporting/
    assert "mean dets" in shown.split("== zz detection stats")[1]
    assert "== complexity at 256x256 ==" in shown  # counted at the model's native size
    assert f"· {BACKEND} · fp32 ==" in shown  # the backend's own speed table

    _ok(fresh_cli(site, work, "report", str(run_dir), "--out", str(work / "rep"), "--no-claims"))
    readme = (work / "rep" / "README.md").read_text()
    assert "zz detection stats" in readme and "mean dets" in readme
    assert "complexity at 256x256" in readme and BACKEND in readme

    baseline = work / "b.json"
    _ok(fresh_cli(site, work, "baseline", "save", str(run_dir), "--out", str(baseline)))
    saved = baseline.read_text()
    assert METRIC in saved and f"latency-{MODEL}-{BACKEND}-fp32-bs1" in saved
    assert f"complexity-{MODEL}-256x256" in saved
    checked = _ok(fresh_cli(site, work, "check", "--all", "--baseline", str(baseline), str(run_dir)))
    for rid in (f"{TASK}-{MODEL}-", f"latency-{MODEL}-{BACKEND}-fp32-bs1", f"complexity-{MODEL}-256x256"):
        assert rid in checked, checked  # each extension's record is compared

    # the plug-in's metric is gated: the same run with fewer detections per image fails
    worse = work / "results" / "worse"
    shutil.copytree(run_dir, worse)
    (stats_file,) = (worse / "records").glob(f"{TASK}-{MODEL}-*.json")
    rec = json.loads(stats_file.read_text())
    rec["metrics"][METRIC]["value"] -= 5.0
    stats_file.write_text(json.dumps(rec))
    dropped = fresh_cli(site, work, "check", "--baseline", str(baseline), str(worse))
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr
    assert METRIC in dropped.stdout and "WORSE" in dropped.stdout

    # the backend's fingerprint is gated: its timings under another option value do not compare
    other = work / "results" / "other"
    shutil.copytree(run_dir, other)
    latency_file = other / "records" / f"latency-{MODEL}-{BACKEND}-fp32-bs1.json"
    rec = json.loads(latency_file.read_text())
    rec["setup"]["extra"]["fingerprint"]["option.flavour"] = "spicy"
    latency_file.write_text(json.dumps(rec))
    refused = fresh_cli(site, work, "check", "--baseline", str(baseline), str(other))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "fingerprint.option.flavour is 'plain' in the baseline but 'spicy'" in refused.stdout
