"""`dfine-bench compare` and `dfine-bench report` on a real (tiny) run of the toy plug-in models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from reporting_helpers import CPU, record, suite_records

from dfine_bench.claims import check_claims
from dfine_bench.cli import main
from dfine_bench.records import ResultRecord, load_records, store
from dfine_bench.reporting import runs
from dfine_bench.reporting.claims_table import ClaimsTable

#: A run of the toy models in seconds (the toy_quick test suite) at batch sizes 1 and 2.
QUICK = [
    "--suites-dir",
    str(Path(__file__).resolve().parents[1] / "fixtures" / "suites"),
    "suite=toy_quick",
    "profiling.batch_sizes=[1,2]",
]


def test_run_then_compare_and_report(plugin_site, cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the runner renders the report itself at the end of a run (runner.py -> build_report)
    assert main(["run", "suite.models=[toy_det,toy_det_b]", *QUICK, "suite.report=true"]) == 0
    (run_dir,) = [p for p in (cli_env / "results").iterdir() if (p / "run.json").exists()]
    assert (cli_env / "reports" / run_dir.name / "index.html").is_file()
    records = load_records([run_dir])
    device = records[0].setup.device_name
    capsys.readouterr()

    assert main(["compare", "--no-claims", "--markdown", "cmp.md", "--csv", "cmp.csv"]) == 0
    out = capsys.readouterr().out
    assert run_dir.name in out  # no path given: the newest run
    assert "STAND-INS AND DEVIATIONS" in out and "Random-init weights" in out and "Generated data" in out
    assert f"== {device} · eager · fp32 ==" in out
    assert "stand-in: random-init weights / generated data" in out
    latency = {r.model.name: r.value("latency_median") for r in records if r.task == "latency"}
    csv = pd.read_csv(cli_env / "cmp.csv")
    assert set(csv["model"]) == {"toy_det", "toy_det_b"}
    col = f"{device} · eager · fp32 | latency median (ms)"
    assert dict(zip(csv["model"], csv[col])) == pytest.approx(latency)
    md = (cli_env / "cmp.md").read_text()
    assert f"## {device} · eager · fp32" in md and "> [!WARNING]" in md

    assert main(["compare", str(run_dir), "--task", "complexity", "--no-claims"]) == 0
    out = capsys.readouterr().out
    assert "== complexity at 64x64 ==" in out and "latency median" not in out and "eager · fp32 ==" not in out

    assert main(["compare", str(run_dir), "--claims", "dfine_paper"]) == 0
    assert "claims 'dfine_paper'" in capsys.readouterr().out

    assert main(["report", str(run_dir), "--out", "my-report", "--no-claims", "--title", "Toy report"]) == 0
    assert "my-report/index.html" in capsys.readouterr().out
    html = (cli_env / "my-report" / "index.html").read_text()
    assert "<title>Toy report</title>" in html and device in html
    assert list((cli_env / "my-report" / "plots").glob("latency-vs-batch*.svg"))

    assert main(["compare", "--backend", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "error: no record matches backend=tensorrt" in err and "backends: eager" in err
    assert len(err.strip().splitlines()) == 1


def test_no_runs_is_a_one_line_error(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare"]) == 2
    assert "no run with records under results/" in capsys.readouterr().err  # the shared rule's words
    assert main(["report", "results/nope"]) == 2
    assert "results/nope does not exist" in capsys.readouterr().err
    assert not (cli_env / "reports").exists()


def test_records_of_another_schema_version_are_skipped(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = cli_env / "results" / "old-run" / "records"
    records.mkdir(parents=True)
    (records / "latency-x.json").write_text(json.dumps({"schema_version": 0, "task": "latency"}))
    assert main(["report", "--no-claims"]) == 2
    err = capsys.readouterr().err
    assert "no records in results/old-run" in err and "another schema version" in err
    assert not (cli_env / "reports").exists()


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("compare", "report"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"dfine-bench {command} results/<run-id>" in text


def test_compare_and_report_pick_the_newest_run_by_the_shared_rule(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One "newest run" rule for every command: ``dfine_bench.records.store.newest_run``."""
    assert runs.newest_run is store.newest_run
    for run_id, day in (("run-new", 24), ("run-resumed", 20)):
        started = f"2026-11-{day}T10:00:00+00:00"
        run = store.RunStore(cli_env / "results" / run_id)
        run.write_meta({"run_id": run_id, "started_at": started})
        for r in suite_records(run_id=run_id)[:2]:
            run.write_record(r)
    os.utime(cli_env / "results" / "run-resumed", None)  # touched last: resumed, not newer
    assert main(["compare", "--no-claims"]) == 0
    assert "(run(s) run-new)" in capsys.readouterr().out


def _write_run(root: Path, records: list[ResultRecord]) -> Path:
    run = store.RunStore(root / "results" / records[0].run_id)
    run.write_meta({"run_id": records[0].run_id, "started_at": "2026-11-24T10:00:00+00:00"})
    for r in records:
        run.write_record(r)
    return run.run_dir


def test_compare_backend_filter_keeps_complexity_accuracy_and_claims(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Complexity and evaluation records say eager: --backend onnxruntime keeps them and their claims."""
    records = suite_records(generated=False)
    records.append(record("latency", "dfine_n", {"latency_mean": 5.0}, backend="onnxruntime"))
    _write_run(cli_env, records)
    assert main(["compare", "--backend", "onnxruntime", "--claims", "dfine_paper", "--markdown", "c.md"]) == 0
    out = capsys.readouterr().out
    assert "== complexity at 640x640 ==" in out and "== accuracy on coco_val2017" in out
    assert f"== {CPU} · onnxruntime · fp32 ==" in out and "eager · fp32 ==" not in out
    # claims are checked against every record: dfine_s's eager latency still counts, the params too
    every = ClaimsTable("dfine_paper", check_claims("dfine_paper", records))
    assert f"== {every.summary()} ==" in out
    assert f"checked against all {len(records)} record(s): the filters apply to the tables only" in out
    verdicts = dict(zip(zip(every.frame["model"], every.frame["metric"]), every.frame["verdict"]))
    assert verdicts[("dfine_n", "params")] != "not measured"
    assert verdicts[("dfine_s", "latency_mean")] != "not measured"
    assert "Checked against all" in (cli_env / "c.md").read_text()
