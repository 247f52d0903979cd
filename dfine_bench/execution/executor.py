"""The thin executor: runs a ``RunPlan`` unit by unit and writes each unit's records.

Per model it builds the adapter once, runs the model's pending units, writes their records as
soon as each unit ends and marks the unit done. One guard turns anything a unit raises into
``failed`` (or ``skipped``, for a backend this machine cannot run) records under the unit's
planned keys, so the rest of the suite goes on. A unit with a failed record is not marked done:
resuming the run runs it again. What a task does is the unit's own ``run`` (the plan carries it);
the executor calls nothing else.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dfine_bench.errors import BackendUnavailable, DfineBenchError
from dfine_bench.execution.plan import ModelWork, RunPlan, Unit
from dfine_bench.records.build import make_record
from dfine_bench.records.schema import ModelInfo, ResultRecord, TaskOutcome
from dfine_bench.records.store import RunStore

log = logging.getLogger("dfine_bench")

#: What may go wrong while building a model; a suite records it and goes on to the next model.
BUILD_ERRORS = (DfineBenchError, OSError, RuntimeError, ValueError, ImportError)


@dataclass
class RunOutcome:
    """What a finished (or stopped) run left behind."""

    run_dir: Path
    records: list[ResultRecord] = field(default_factory=list)
    report_dir: Path | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def guard(unit: Unit, task: Callable[[], list[TaskOutcome]]) -> list[TaskOutcome]:
    """``task()``, or the unit's planned records as ``skipped``/``failed`` if it raises."""
    try:
        return task()
    except BackendUnavailable as exc:
        return unit.not_run("skipped", str(exc))
    except (KeyboardInterrupt, SystemExit):
        raise
    except DfineBenchError as exc:
        log.error("%s: %s", unit.id, exc)
        return unit.not_run("failed", str(exc))
    except Exception as exc:  # one broken task must not take the rest of the suite down
        log.exception("%s failed", unit.id)
        return unit.not_run("failed", f"{type(exc).__name__}: {exc}")


class Executor:
    """Runs ``plan``'s units not in ``done``; with no ``store`` (other torchrun ranks) writes nothing."""

    def __init__(
        self,
        plan: RunPlan,
        *,
        store: RunStore | None,
        run_id: str,
        environment: dict[str, object],
        done: set[str],
    ) -> None:
        self.plan, self.store = plan, store
        self.run_id, self.environment = run_id, dict(environment)
        self.done = set(done)

    def run(self, outcome: RunOutcome) -> None:
        for work in self.plan.work:
            self._run_model(work, outcome)

    def _run_model(self, work: ModelWork, outcome: RunOutcome) -> None:
        pending = [u for u in work.units if u.id not in self.done]
        if not pending:
            log.info("%s: all tasks already done (resumed)", work.name)
            return
        try:
            adapter = work.build()
        except BUILD_ERRORS as exc:
            if len(self.plan.work) == 1 and isinstance(exc, DfineBenchError):
                raise
            self._unbuildable(work, pending, exc, outcome)
            return
        info = work.describe(adapter)
        for unit in pending:
            outcomes = guard(unit, functools.partial(unit.run, adapter))
            self._write(unit, outcomes, info, outcome)

    def _write(self, unit: Unit, outcomes: list[TaskOutcome], info: ModelInfo, outcome: RunOutcome) -> None:
        if self.store is None:
            return
        failed = False
        for o in outcomes:
            rec = make_record(
                o,
                run_id=self.run_id,
                model=info,
                base_setup=unit.setup,
                environment=self.environment,
            )
            self.store.write_record(rec)
            if rec.status == "failed":
                failed = True
                outcome.failed.append(rec.record_id)
                log.error("%s failed: %s", rec.record_id, rec.reason)
            elif rec.status == "skipped":
                log.warning("%s skipped: %s", rec.record_id, rec.reason)
        if failed:  # not done: resuming the run runs it again
            self.done.discard(unit.id)
        else:
            self.done.add(unit.id)
        self.store.update_meta(completed_units=sorted(self.done))

    def _unbuildable(
        self, work: ModelWork, pending: list[Unit], exc: BaseException, outcome: RunOutcome
    ) -> None:
        status = "skipped" if isinstance(exc, (BackendUnavailable, ImportError)) else "failed"
        reason = f"could not build {work.name}: {exc}"
        log.error("%s", reason) if status == "failed" else log.warning("%s", reason)
        info = work.describe(None)
        for unit in pending:
            self._write(unit, unit.not_run(status, reason), info, outcome)


__all__ = ["BUILD_ERRORS", "Executor", "RunOutcome", "guard"]
