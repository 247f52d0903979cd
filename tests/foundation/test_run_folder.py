"""Run folders and output paths under hostile input (issue 15, defects 1, 2, 4, 5, 6) and the run plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dfine_bench.cli import main
from dfine_bench.config.loading import compose_config, load_settings
from dfine_bench.records import load_records
from dfine_bench.runner import SuiteRunner

TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
QUICK = ["--suites-dir", str(TOY_SUITES), "suite=toy_quick", "suite.models=[toy_det]"]
EVAL_ONLY = [*QUICK, "profiling.enabled=false"]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- defect 1: a run folder belongs to one resolved config ------------------------------------
def test_resuming_a_run_id_with_other_settings_is_refused(plugin_site, cli_env: Path, capsys) -> None:
    assert main(["run", *EVAL_ONLY, "dataset.num_images=4", "output.run_id=cfgA"]) == 0
    run_dir = cli_env / "results" / "cfgA"
    meta_before = (run_dir / "run.json").read_text()
    (record,) = load_records([run_dir], strict=True)
    assert record.value("images_seen") == 4
    capsys.readouterr()

    assert main(["run", *EVAL_ONLY, "dataset.num_images=6", "output.run_id=cfgA"]) == 2
    err = _one_line(capsys)
    assert "dataset.num_images: 4 -> 6" in err and "new run id" in err
    assert (run_dir / "run.json").read_text() == meta_before, "run.json must not take the new settings"

    # the same settings resume; settings that change no result (the progress bar) do not count
    assert (
        main(["run", *EVAL_ONLY, "dataset.num_images=4", "output.run_id=cfgA", "output.log_level=WARNING"])
        == 0
    )


def test_resuming_on_other_data_is_refused(
    plugin_site, cli_env: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same config, other data ($DFINE_BENCH_COCO now points elsewhere): not the same results either."""
    from dfine_bench.data.generated import GeneratedParams, generate_dataset

    roots = [cli_env / "coco-a", cli_env / "coco-b"]
    for seed, root in enumerate(roots):
        images, annotations = generate_dataset(
            root, GeneratedParams(num_images=3, image_size=(64, 96), seed=seed)
        )
    args = [
        "run",
        *EVAL_ONLY,
        "dataset=coco",
        f"dataset.images={images.relative_to(roots[1])}",
        f"dataset.annotations={annotations.relative_to(roots[1])}",
        "output.run_id=data",
    ]
    monkeypatch.setenv("DFINE_BENCH_COCO", str(roots[0]))
    assert main(args) == 0
    monkeypatch.setenv("DFINE_BENCH_COCO", str(roots[1]))
    capsys.readouterr()
    assert main(args) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "output.run_id=data" in last and "other data" in last and "new run id" in last


# -- defect 4: a failed task is retried on resume ------------------------------------------------
def test_a_failed_task_runs_again_on_resume(
    plugin_site, cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dfine_bench.runner as evaluation  # the runner's task calls evaluate_model from there

    real = evaluation.evaluate_model

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a truncated image")

    monkeypatch.setattr(evaluation, "evaluate_model", crash)
    assert main(["run", *EVAL_ONLY, "output.run_id=retry"]) == 1
    run_dir = cli_env / "results" / "retry"
    (failed,) = load_records([run_dir], strict=True)
    assert failed.status == "failed"
    meta = json.loads((run_dir / "run.json").read_text())
    assert "evaluation/toy_det" not in meta["completed_units"]

    monkeypatch.setattr(evaluation, "evaluate_model", real)  # the image is fixed
    assert main(["run", *EVAL_ONLY, "output.run_id=retry"]) == 0
    (fixed,) = load_records([run_dir], strict=True)
    assert fixed.record_id == failed.record_id and fixed.status == "ok"
    assert json.loads((run_dir / "run.json").read_text())["completed_units"] == ["evaluation/toy_det"]


# -- defect 6: unsafe output paths ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("output.run_id=..", "output.run_id"),
        ("output.run_id=.", "output.run_id"),
        ("output.run_id=a/../../b", "output.run_id"),
        ("output.report_name=../../x", "output.report_name"),
        ("output.report_name=/tmp/x", "output.report_name"),
    ],
)
def test_unsafe_output_paths_are_refused(plugin_site, cli_env: Path, capsys, override: str, key: str) -> None:
    assert main(["run", *EVAL_ONLY, "suite.report=true", override]) == 2
    assert key in _one_line(capsys)
    assert not (cli_env / "run.json").exists() and not (cli_env / "results").exists()
    assert not (cli_env.parent / "x").exists()


# -- defect 5: evaluate --run-id ------------------------------------------------------------------
def _evaluate_args(tmp: Path) -> list[str]:
    """A one-image COCO annotation file and a predictions file for it."""
    ann = tmp / "instances.json"
    ann.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "width": 64, "height": 64, "file_name": "1.jpg"}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "area": 64, "iscrowd": 0}
                ],
                "categories": [{"id": 1, "name": "thing"}],
            }
        )
    )
    preds = tmp / "preds.json"
    preds.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "score": 0.5}]))
    return ["evaluate", "--annotations", str(ann), "--predictions", str(preds)]


@pytest.mark.parametrize("run_id", ["..", ".", "/tmp/elsewhere", "a/b"])
def test_evaluate_refuses_unsafe_run_ids(cli_env: Path, capsys, run_id: str) -> None:
    assert main([*_evaluate_args(cli_env), "--run-id", run_id]) == 2
    assert "--run-id" in _one_line(capsys)
    assert not (cli_env / "results").exists() and not (cli_env / "run.json").exists()


def test_evaluate_refuses_an_existing_run(plugin_site, cli_env: Path, capsys) -> None:
    assert main(["run", *EVAL_ONLY, "output.run_id=mine"]) == 0
    run_dir = cli_env / "results" / "mine"
    before = {p.name: p.read_bytes() for p in (run_dir / "records").iterdir()}
    meta = (run_dir / "run.json").read_bytes()
    capsys.readouterr()
    assert main([*_evaluate_args(cli_env), "--run-id", "mine", "--model-name", "toy_det"]) == 2
    assert "already exists" in _one_line(capsys)
    assert {p.name: p.read_bytes() for p in (run_dir / "records").iterdir()} == before
    assert (run_dir / "run.json").read_bytes() == meta


def test_evaluate_does_not_import_the_runner(cli_env: Path) -> None:
    args = _evaluate_args(cli_env)
    code = (
        "import sys; from dfine_bench.cli import main; "
        f"rc = main({args!r}); "
        "assert 'dfine_bench.runner' not in sys.modules, 'evaluate imported the runner'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cli_env
    )
    assert proc.returncode == 0, proc.stderr


# -- defect 2: report --out never destroys user files ---------------------------------------------
def test_report_out_refuses_a_folder_it_did_not_make(plugin_site, cli_env: Path, capsys) -> None:
    assert main(["run", *QUICK, "output.run_id=src"]) == 0
    mine = cli_env / "mine"
    (mine / "plots").mkdir(parents=True)
    (mine / "README.md").write_text("my own notes\n")
    (mine / "plots" / "figure.png").write_bytes(b"my figure")
    capsys.readouterr()

    assert main(["report", "results/src", "--out", str(mine), "--no-claims"]) == 2
    assert "--force" in _one_line(capsys)
    assert (mine / "README.md").read_text() == "my own notes\n" and not (mine / "index.html").exists()

    assert main(["report", "results/src", "--out", str(mine), "--no-claims", "--force"]) == 0
    assert (mine / "plots" / "figure.png").read_bytes() == b"my figure", "a file it did not write was deleted"
    assert (mine / "index.html").is_file()

    # a folder it made is its own: a new report goes there without --force
    ours = cli_env / "ours"
    assert main(["report", "results/src", "--out", str(ours), "--no-claims"]) == 0
    (ours / "plots" / "later.png").write_bytes(b"added by hand")
    assert main(["report", "results/src", "--out", str(ours), "--no-claims"]) == 0
    assert (ours / "plots" / "later.png").read_bytes() == b"added by hand"


def test_run_refuses_a_report_folder_of_the_users_before_running(plugin_site, cli_env: Path, capsys) -> None:
    (cli_env / "reports" / "kept").mkdir(parents=True)
    (cli_env / "reports" / "kept" / "README.md").write_text("mine")
    assert main(["run", *EVAL_ONLY, "suite.report=true", "output.report_name=kept"]) == 2
    assert "output.report_name" in _one_line(capsys)
    assert not (cli_env / "results").exists()
    assert (cli_env / "reports" / "kept" / "README.md").read_text() == "mine"


# -- the run plan -----------------------------------------------------------------------------------
def test_the_plan_names_every_record_a_run_writes(plugin_site, cli_env: Path) -> None:
    overrides = ["suite=toy_quick", "suite.models=[toy_det,toy_det_b]", "suite.backends=[eager,onnxruntime]"]
    settings = load_settings(compose_config(overrides, [TOY_SUITES]), overrides, [TOY_SUITES])
    plan = SuiteRunner(settings, resolved_config={}).plan
    assert [u.id for u in plan.units] == [
        "evaluation/toy_det",
        "profile/toy_det/eager-fp32",
        "profile/toy_det/onnxruntime-fp32",
        "evaluation/toy_det_b",
        "profile/toy_det_b/eager-fp32",
        "profile/toy_det_b/onnxruntime-fp32",
    ]
    assert plan.units[1].include_complexity and not plan.units[2].include_complexity
    assert main(["run", "--suites-dir", str(TOY_SUITES), *overrides, "output.run_id=planned"]) == 0
    written = {r.record_id for r in load_records([cli_env / "results" / "planned"], strict=True)}
    assert written == {rid for u in plan.units for rid in u.record_ids()}
