"""Whether a baseline record and a run record compare at all, and the one-line reasons they do not.

Per record: the same task; the same setup (``SETUP_FIELDS``: device, backend, dtype, batch size
(the swept sizes for throughput), input size, timed part, graph, protocol, COCO engine); the same
weights (``WEIGHTS_KEYS``; a sha256 missing on one side leaves ``weights_id`` to decide, a
baseline saved before checkpoint identity was kept says so in a note); for evaluations the same
dataset (``DATASET_KEYS``). Timings also need the same machine (``MACHINE_FIELDS`` and the
speed-relevant fingerprint fields, ``checks.fingerprint``). ``Differences`` gathers what differed
over every record into the gate's problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dfine_bench.checks.entries import DATASET_KEYS, WEIGHTS_KEYS, Baseline, Entry
from dfine_bench.checks.fingerprint import fingerprint_differences

TIMING_TASKS = ("latency", "throughput")
# graph: the model graph or the deploy graph (postprocessor inside) of a timing; absent in older baselines
SETUP_FIELDS = (
    "device",
    "backend",
    "dtype",
    "batch_size",
    "input_size",
    "timed",
    "graph",
    "protocol",
    "engine",
)
MACHINE_FIELDS = ("device_name", "threads")
#: Checkpoint identity, missing from baselines saved before it was kept (see ``weights_note``).
CHECKPOINT_KEYS = ("weights_id", "weights_sha256")


def differences(base: Entry, new: Entry) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """(setup differences that make a record incomparable, machine differences that only affect timing)."""
    hard: list[tuple[str, Any, Any]] = []
    if base.task != new.task:
        hard.append(("task", base.task, new.task))
    hard += _setup_differences(base, new)
    hard += _weights_differences(base, new)
    hard += _dataset_differences(base, new)
    machine: list[tuple[str, Any, Any]] = []
    if new.task in TIMING_TASKS:
        machine += [
            (f"setup.{key}", base.setup.get(key), new.setup.get(key))
            for key in MACHINE_FIELDS
            if key in base.setup and base.setup.get(key) != new.setup.get(key)
        ]
        machine += fingerprint_differences(base.fingerprint, new.fingerprint)
    return hard, machine


def _setup_differences(base: Entry, new: Entry) -> list[tuple[str, Any, Any]]:
    out = []
    for key in SETUP_FIELDS:
        if key == "batch_size" and new.task == "throughput":
            key = "batch_sizes"  # the best batch size may move with noise; the swept sizes may not
        if key in base.setup and base.setup.get(key) != new.setup.get(key):
            out.append((f"setup.{key}", base.setup.get(key), new.setup.get(key)))
    return out


def _weights_differences(base: Entry, new: Entry) -> list[tuple[str, Any, Any]]:
    out = []
    for key in WEIGHTS_KEYS:
        if key not in base.model:  # an older baseline: unknown, not a difference (``weights_note``)
            continue
        if key == "weights_seed" and not base.model.get("random_init"):
            continue  # a seed only shapes random-init weights
        b, n = base.model.get(key), new.model.get(key)
        if key == "weights_sha256" and (b is None or n is None):
            continue  # not hashed on one side (a checkpoint not downloaded yet): weights_id decides
        if b != n:
            out.append((f"model.{key}", b, n))
    return out


def _dataset_differences(base: Entry, new: Entry) -> list[tuple[str, Any, Any]]:
    if base.dataset is None:
        return []
    nd = new.dataset or {}
    return [
        (f"dataset.{key}", base.dataset.get(key), nd.get(key))
        for key in DATASET_KEYS
        if key in base.dataset and base.dataset.get(key) != nd.get(key)
    ]


def group(diffs: dict[tuple[str, str, str], list[str]]) -> list[str]:
    out = []
    for (key, b, n), rids in diffs.items():
        shown = ", ".join(rids[:3]) + (f" and {len(rids) - 3} more" if len(rids) > 3 else "")
        out.append(f"{key} is {b} in the baseline but {n} in the run ({shown})")
    return out


def weights_note(baseline: Baseline) -> list[str]:
    """A note when the baseline predates checkpoint identity: another checkpoint would go unnoticed."""
    old = sorted(r for r, e in baseline.entries.items() if any(k not in e.model for k in CHECKPOINT_KEYS))
    if not old:
        return []
    shown = ", ".join(old[:3]) + (f" and {len(old) - 3} more" if len(old) > 3 else "")
    return [
        f"the baseline has no {' / '.join(CHECKPOINT_KEYS)} ({shown}): saved before checkpoints were "
        "told apart, so a change of checkpoint is not detected; re-save it with `dfine-bench baseline save`"
    ]


@dataclass
class Differences:
    """What made records incomparable, grouped by (field, baseline value, run value) -> record ids."""

    hard: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    machine: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    @staticmethod
    def add(
        table: dict[tuple[str, str, str], list[str]], diffs: list[tuple[str, Any, Any]], rid: str
    ) -> None:
        for key, b, n in diffs:
            table.setdefault((key, repr(b), repr(n)), []).append(rid)

    def setup_problems(self) -> list[str]:
        out = []
        for (key, _, _), text in zip(self.hard, group(self.hard)):
            if key.startswith("model."):
                out.append(
                    f"other weights: {text}; numbers of two checkpoints do not compare: save a new baseline "
                    "for the new weights"
                )
            else:
                out.append(f"another setup: {text}")
        return out

    def machine_problems(self) -> list[str]:
        return [
            f"{'not comparable' if d.startswith('fingerprint.') else 'another machine'}: {d}; timings "
            "of two machines do not compare: save a baseline on this "
            "machine, or pass --allow-other-device to gate only accuracy, params and GFLOPs"
            for d in group(self.machine)
        ]
