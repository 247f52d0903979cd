"""Result records: schema round trip, atomic writes, loading as a DataFrame, corrupt files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dfine_bench.records import (
    SCHEMA_VERSION,
    DatasetInfo,
    ModelInfo,
    ResultRecord,
    RunStore,
    Setup,
    load_frame,
    load_records,
    metric,
)
from dfine_bench.records.environment import capture_environment
from dfine_bench.records.store import new_run_id


def make_record(run_id: str, model: str = "dfine_n", ap: float = 12.5) -> ResultRecord:
    return ResultRecord(
        run_id=run_id,
        record_id=f"evaluation-{model}",
        task="evaluation",
        model=ModelInfo(name=model, family="d-fine", weights_source="random-init", weights_seed=0),
        setup=Setup(device="cpu", backend="eager"),
        environment=capture_environment(),
        metrics={"AP": metric("AP", ap), "params": metric("params", 3.8)},
        dataset=DatasetInfo(name="generated", kind="generated", generated=True, num_images=8),
    )


def test_record_round_trips_through_json(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run-a")
    rec = make_record("run-a")
    path = store.write_record(rec)
    loaded = ResultRecord.from_dict(json.loads(path.read_text()))
    assert loaded.to_dict() == rec.to_dict()
    assert loaded.metrics["AP"].unit == "%"
    assert loaded.is_stand_in


def test_environment_has_provenance() -> None:
    env = capture_environment()
    for key in (
        "python",
        "torch",
        "transformers",
        "cpu_model",
        "cpu_count",
        "os",
        "dfine_bench",
        "git_revision",
        "git_dirty",
        "torch_threads",
    ):
        assert key in env, key
    assert env["torch"]


def test_load_frame_over_several_runs(tmp_path: Path) -> None:
    for run, ap in (("r1", 10.0), ("r2", 20.0)):
        RunStore(tmp_path / run).write_record(make_record(run, ap=ap))
    df = load_frame([tmp_path])
    assert sorted(df["AP"]) == [10.0, 20.0]
    assert set(df["run_id"]) == {"r1", "r2"}
    long = load_frame([tmp_path / "r1"], long=True)
    assert set(long["metric"]) == {"AP", "params"}


def test_corrupt_and_foreign_files_are_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    store = RunStore(tmp_path / "run")
    store.write_record(make_record("run"))
    (store.records_dir / "broken.json").write_text("{not json")
    (store.records_dir / "foreign.json").write_text(json.dumps({"hello": "world"}))
    old = make_record("run").to_dict()
    old["schema_version"] = SCHEMA_VERSION + 1
    old["record_id"] = "future"
    (store.records_dir / "future.json").write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING):
        records = load_records([store.run_dir])
    assert len(records) == 1
    text = caplog.text
    assert "broken.json" in text and "foreign.json" in text and "future.json" in text
    with pytest.raises(ValueError, match=r"broken\.json|foreign\.json"):
        load_records([store.run_dir], strict=True)


def test_writes_are_atomic_no_temp_files_left(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    for i in range(5):
        store.write_record(make_record("run", ap=float(i)))
    files = list(store.records_dir.iterdir())
    assert [f.name for f in files] == ["evaluation-dfine_n.json"]
    assert load_records([store.run_dir])[0].value("AP") == 4.0


def test_one_writer_per_run_folder(tmp_path: Path) -> None:
    a, b = RunStore(tmp_path / "run"), RunStore(tmp_path / "run")
    assert a.try_lock()
    assert not b.try_lock()
    assert b.is_locked_by_other()
    a.unlock()
    assert b.try_lock()
    b.unlock()


def test_run_ids_are_unique() -> None:
    ids = {new_run_id("default") for _ in range(50)}
    assert len(ids) == 50


def test_record_assembly_refuses_a_setup_key_it_does_not_know() -> None:
    """Issue 19: a mistyped setup key used to land silently in ``setup.extra``."""
    from dfine_bench.records.build import make_record as build_record
    from dfine_bench.records.schema import TaskOutcome

    model = ModelInfo(name="dfine_n", random_init=False)
    base = Setup(device="cpu", batch_size=1)
    ok = TaskOutcome(task="latency", key="eager-fp32", setup={"batch_size": 4, "extra": {"graph": "model"}})
    rec = build_record(ok, run_id="r", model=model, base_setup=base, environment={})
    assert rec.setup.batch_size == 4 and rec.setup.extra == {"graph": "model"}
    assert base.batch_size == 1 and base.extra == {}  # the base setup is not changed
    typo = TaskOutcome(task="latency", key="eager-fp32", setup={"batchsize": 4})
    with pytest.raises(ValueError, match=r"latency/dfine_n/eager-fp32: setup key\(s\) 'batchsize'"):
        build_record(typo, run_id="r", model=model, base_setup=base, environment={})
