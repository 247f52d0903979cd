"""Selecting the records a report or comparison shows: each record once, and the CLI's filters.

``unique_records`` drops a record reached twice; ``filter_records`` applies ``--family``,
``--task``, ``--device`` and ``--backend`` (the last two to timing records only) and says what
exists when nothing matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dfine_bench.errors import DfineBenchError
from dfine_bench.records.schema import TASKS, ResultRecord
from dfine_bench.reporting import labels

#: Tasks whose numbers depend on the device and backend that ran them: the only ones the
#: ``device`` / ``backend`` filters apply to. Evaluation and complexity records carry the run's
#: device and ``eager`` too, but their AP / params / GFLOPs hold for every backend.
DEVICE_TASKS = ("latency", "throughput", "trace")


def unique_records(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """``records`` with each (run, record id) once, in first-seen order.

    The same record reached twice (``results/`` and ``results/<run>`` both given) counts once.
    """
    return list({(r.run_id, r.record_id): r for r in reversed(list(records))}.values())[::-1]


def filter_records(
    records: Iterable[ResultRecord],
    *,
    device: str | None = None,
    backend: str | None = None,
    family: str | None = None,
    tasks: Sequence[str] | None = None,
) -> list[ResultRecord]:
    """The records that match every given filter.

    ``family`` ignores case and punctuation (``d-fine`` = ``dfine``); ``tasks`` keeps only those
    tasks. ``device`` (the device string ``cpu``, ``cuda``, ``cuda:0``, or part of the device name:
    ``T4``, ``EPYC``) and ``backend`` (exact) apply to the tasks in ``DEVICE_TASKS`` only: an
    evaluation or complexity record is kept whatever backend is asked for, since its numbers do
    not depend on it. Nothing matching is an error naming the values that exist.
    """
    records = list(records)
    _check_tasks(tasks)
    out = _by_family_and_task(records, family, tasks)
    if device is None and backend is None:
        return out
    return _by_device_and_backend(out, device, backend)


def _check_tasks(tasks: Sequence[str] | None) -> None:
    """An unknown ``--task`` is an error naming the tasks that exist."""
    unknown = sorted(set(tasks or ()) - set(TASKS))
    if unknown:
        raise DfineBenchError(f"unknown task {', '.join(unknown)}: choose from {', '.join(TASKS)}")


def _by_family_and_task(
    records: list[ResultRecord], family: str | None, tasks: Sequence[str] | None
) -> list[ResultRecord]:
    """The records of ``family`` and ``tasks`` (each when given); none of many is an error."""
    wanted = labels.normalize_name(family) if family is not None else None
    out = [
        r
        for r in records
        if (wanted is None or labels.normalize_name(r.model.family) == wanted)
        and (not tasks or r.task in tasks)
    ]
    if records and not out:
        asked = ", ".join(x for x in (f"family={family}" if family else "", _tasks_text(tasks)) if x)
        have = (
            f"families: {_values(r.model.family for r in records)}; tasks: {_values(r.task for r in records)}"
        )
        raise DfineBenchError(f"no record matches {asked} among {len(records)} records ({have})")
    return out


def _by_device_and_backend(
    out: list[ResultRecord], device: str | None, backend: str | None
) -> list[ResultRecord]:
    """``out`` less the timing records of other devices or backends; no timing record left is an error."""

    def on_device(r: ResultRecord) -> bool:
        return (device is None or labels.matches_device(r.setup, device)) and (
            backend is None or r.setup.backend == backend
        )

    timed = [r for r in out if r.task in DEVICE_TASKS]
    if not any(on_device(r) for r in timed):
        asked = ", ".join(f"{k}={v}" for k, v in (("device", device), ("backend", backend)) if v)
        have = (
            f"devices: {_values(labels.device_label(r.setup) for r in timed)}; "
            f"backends: {_values(r.setup.backend for r in timed)}"
        )
        raise DfineBenchError(
            f"no record matches {asked} among the {len(timed)} latency, throughput or trace record(s) "
            f"({have}); --device and --backend apply to those tasks only"
        )
    return [r for r in out if r.task not in DEVICE_TASKS or on_device(r)]


def _tasks_text(tasks: Sequence[str] | None) -> str:
    return f"task={','.join(tasks)}" if tasks else ""


def _values(values: Iterable[str]) -> str:
    return ", ".join(sorted({v for v in values if v})) or "(none)"
