"""Whole runs through the CLI: records with provenance, kill + resume, concurrent runs, multirun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfine_bench.cli import main
from dfine_bench.records import load_records

#: A quick run of the toy models (tests/fixtures/suites/suite/toy_quick.yaml): generated data, eager
#: profiling at batch 1, no report.
QUICK = ["--suites-dir", str(Path(__file__).resolve().parents[1] / "fixtures" / "suites"), "suite=toy_quick"]


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "results").iterdir() if (p / "run.json").exists())


def test_run_writes_records_with_provenance(plugin_site, cli_env: Path) -> None:
    code = main(["run", "suite.models=[toy_det,toy_det_b]", *QUICK])
    assert code == 0
    (run_dir,) = _run_dirs(cli_env)
    records = load_records([run_dir], strict=True)
    by_task: dict[str, set[str]] = {}
    for r in records:
        by_task.setdefault(r.task, set()).add(r.model.name)
        assert r.status == "ok", (r.record_id, r.reason)
        assert r.model.random_init and r.model.weights_source == "random-init"
        assert r.setup.device == "cpu" and r.setup.device_name
        assert r.environment["torch"] and "git_revision" in r.environment
    assert by_task["evaluation"] == {"toy_det", "toy_det_b"}
    assert {"complexity", "latency", "throughput"} <= set(by_task)
    ev = next(r for r in records if r.task == "evaluation")
    assert ev.dataset is not None and ev.dataset.generated and ev.dataset.annotations_sha256
    assert any("random-init" in n for n in ev.notes)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete"
    assert meta["config"]["suite"]["models"] == ["toy_det", "toy_det_b"]
    assert (run_dir / "run.log").read_text().strip()


def _command(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "dfine_bench", "run", *extra]


@pytest.mark.slow
def test_killed_run_keeps_records_and_resumes(plugin_site, cli_env: Path) -> None:
    """SIGKILL half-way: what was written stays readable; the same command resumes, not restarts."""
    args = [
        "suite.models=[toy_det,toy_det_slow]",
        *QUICK,
        "dataset.num_images=30",
        "profiling.enabled=false",
    ]
    env = {**os.environ, "TOY_SLEEP_S": "0.25"}
    proc = subprocess.Popen(
        _command(args), env=env, cwd=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 240
    run_dir = None
    try:
        # Wait until the first model is finished and the slow one has streamed some predictions.
        while time.time() < deadline:
            dirs = _run_dirs(cli_env) if (cli_env / "results").exists() else []
            if dirs:
                run_dir = dirs[0]
                slow = run_dir / "predictions" / "toy_det_slow"
                first_done = (
                    run_dir / "records" / "evaluation-toy_det-faster_coco_eval.json"
                ).exists() or any((run_dir / "records").glob("evaluation-toy_det-*.json"))
                streamed = slow.exists() and any(f.stat().st_size > 0 for f in slow.glob("part-*.jsonl"))
                if first_done and streamed:
                    break
            assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()}"
            time.sleep(0.2)
        else:
            pytest.fail("the run did not reach the point to kill it in time")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run_dir is not None
    before = load_records([run_dir], strict=True)  # everything on disk is readable
    assert {r.model.name for r in before} == {"toy_det"}
    first_record = next((run_dir / "records").glob("evaluation-toy_det-*.json"))
    first_mtime = first_record.stat().st_mtime_ns
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    done = subprocess.run(_command(args), env=env, cwd=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _run_dirs(cli_env) == [run_dir], "the same command must resume the same run"
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["resumed_at"]
    assert first_record.stat().st_mtime_ns == first_mtime, "a finished task was recomputed"
    after = load_records([run_dir], strict=True)
    slow = next(r for r in after if r.model.name == "toy_det_slow" and r.task == "evaluation")
    assert slow.status == "ok"
    assert slow.value("images_skipped") and slow.value("images_skipped") > 0, "evaluation did not resume"
    assert slow.value("images_seen") == 30


def test_two_runs_at_once_use_two_folders(plugin_site, cli_env: Path) -> None:
    args = ["suite.models=[toy_det]", *QUICK, "profiling.enabled=false"]
    procs = [
        subprocess.Popen(
            _command(args), cwd=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    dirs = _run_dirs(cli_env)
    assert len(dirs) == 2
    for d in dirs:
        assert len(load_records([d], strict=True)) == 1


def test_finished_run_is_not_reused(plugin_site, cli_env: Path) -> None:
    args = ["run", "suite.models=[toy_det]", *QUICK, "profiling.enabled=false"]
    assert main(args) == 0
    assert main(args) == 0
    assert len(_run_dirs(cli_env)) == 2


@pytest.mark.slow
def test_multirun_with_the_joblib_launcher(plugin_site, cli_env: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="hydra-joblib-launcher not installed")
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model=toy_det,toy_det_b",
        *QUICK,
        "profiling.enabled=false",
    ]
    done = subprocess.run(_command(args), cwd=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    models = {r.model.name for d in _run_dirs(cli_env) for r in load_records([d], strict=True)}
    assert models == {"toy_det", "toy_det_b"}


@pytest.mark.slow
def test_torchrun_two_processes_report_the_single_process_ap(plugin_site, cli_env: Path) -> None:
    """`torchrun --nproc_per_node=2 -m dfine_bench run` shards images and gets the same AP (gloo, CPU)."""
    args = ["suite.models=[toy_det]", *QUICK, "dataset.num_images=10", "profiling.enabled=false"]
    single = subprocess.run(
        _command([*args, "output.run_id=single"]), cwd=cli_env, capture_output=True, text=True, timeout=300
    )
    assert single.returncode == 0, single.stderr
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "dfine_bench",
        "run",
        *args,
        "output.run_id=sharded",
    ]
    sharded = subprocess.run(torchrun, cwd=cli_env, capture_output=True, text=True, timeout=300)
    assert sharded.returncode == 0, sharded.stderr
    (one,) = load_records([cli_env / "results" / "single"], strict=True)
    (two,) = load_records([cli_env / "results" / "sharded"], strict=True)
    assert two.value("images_seen") == one.value("images_seen") == 10
    for stat in ("AP", "AP50", "AP75", "AR100"):
        assert two.value(stat) == one.value(stat), stat


def test_a_bad_claims_name_fails_before_any_work(plugin_site, cli_env: Path, capsys) -> None:
    assert main(["run", "suite.models=[toy_det]", "suite.claims=dfine_papr", *QUICK]) == 2
    assert "unknown claims 'dfine_papr'. Did you mean: dfine_paper?" in capsys.readouterr().err
    assert not (cli_env / "results").exists() or not _run_dirs(cli_env)


def test_a_task_that_crashes_is_recorded_under_its_own_record_id(
    plugin_site, cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` must read "ok before, failed now", so a crash keeps the id a success would have."""
    import dfine_bench.runner as evaluation  # the runner's task calls evaluate_model from there

    def crash(*args, **kwargs):
        raise RuntimeError("the loader fell over")

    monkeypatch.setattr(evaluation, "evaluate_model", crash)
    assert main(["run", "suite.models=[toy_det]", *QUICK]) == 1
    (run_dir,) = _run_dirs(cli_env)
    by_id = {r.record_id: r for r in load_records([run_dir], strict=True)}
    failed = by_id["evaluation-toy_det-faster_coco_eval"]
    assert failed.status == "failed" and "RuntimeError: the loader fell over" in failed.reason
    assert by_id["latency-toy_det-eager-fp32-bs1"].status == "ok"  # the rest of the run went on


def test_a_report_that_fails_leaves_a_complete_run(
    plugin_site, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import dfine_bench.reporting as reporting

    def broken(*args, **kwargs):
        raise ValueError("no room for plots")

    monkeypatch.setattr(reporting, "build_report", broken)
    assert (
        main(["run", "suite.models=[toy_det]", *QUICK, "suite.report=true", "profiling.enabled=false"]) == 1
    )
    (run_dir,) = _run_dirs(cli_env)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and "no room for plots" in meta["report_error"]
    assert "failed: report" in capsys.readouterr().out
