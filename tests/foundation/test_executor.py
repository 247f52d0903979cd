"""The executor walks a plan whose units carry their own ``run``: no runner behind it (issue 19).

A plan is data: per model a ``build``, a ``describe`` and units with ``run`` callables and their
planned records. The executor builds each model once, runs its pending units, writes what they
return, and turns a raising unit into ``failed`` records under the ids a success would have had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dfine_bench.execution.executor import Executor, RunOutcome
from dfine_bench.execution.plan import ModelWork, PlannedRecord, RunPlan, Unit
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import ModelInfo, Setup, TaskOutcome
from dfine_bench.records.store import RunStore


def _unit(model: str, key: str, run: Any) -> Unit:
    return Unit("evaluation", model, (PlannedRecord("evaluation", key),), run, Setup(batch_size=2))


def test_the_executor_runs_what_the_units_carry(tmp_path: Path) -> None:
    built: list[str] = []

    def build(name: str) -> Any:
        built.append(name)
        return object()

    def ok(adapter: Any) -> list[TaskOutcome]:
        return [
            TaskOutcome(task="evaluation", key="a", metrics={"AP": metric("AP", 12.5)}, setup={"engine": "x"})
        ]

    def broken(adapter: Any) -> list[TaskOutcome]:
        raise RuntimeError("a truncated image")

    work = ModelWork(
        "toy",
        build=lambda: build("toy"),
        describe=lambda adapter: ModelInfo(name="toy", random_init=adapter is None),
        units=(_unit("toy", "a", ok), _unit("toy", "b", broken)),
    )
    store = RunStore(tmp_path / "run")
    outcome = RunOutcome(run_dir=tmp_path / "run")
    Executor(RunPlan((work,)), store=store, run_id="r", environment={}, done=set()).run(outcome)

    assert built == ["toy"]  # one build for all of the model's units
    by_key = {r.record_id: r for r in store.records()}
    good, bad = by_key["evaluation-toy-a"], by_key["evaluation-toy-b"]
    assert good.status == "ok" and good.value("AP") == 12.5
    assert (good.setup.batch_size, good.setup.engine) == (2, "x")  # the unit's setup, then the outcome's
    assert bad.status == "failed" and bad.reason == "RuntimeError: a truncated image"
    assert outcome.failed == ["evaluation-toy-b"]


def test_done_units_are_not_run_again(tmp_path: Path) -> None:
    def never(adapter: Any) -> list[TaskOutcome]:
        raise AssertionError("a done unit ran again")

    def no_build() -> Any:
        raise AssertionError("a model with every unit done was built")

    work = ModelWork(
        "toy", build=no_build, describe=lambda a: ModelInfo(name="toy"), units=(_unit("toy", "a", never),)
    )
    store = RunStore(tmp_path / "run")
    Executor(RunPlan((work,)), store=store, run_id="r", environment={}, done={"evaluation/toy"}).run(
        RunOutcome(run_dir=tmp_path / "run")
    )
    assert not list((tmp_path / "run").rglob("*.json"))  # nothing written, nothing run
