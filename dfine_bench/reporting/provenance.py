"""Where a report's numbers come from, and the plain statement of what in them is a stand-in.

``provenance(records)`` gathers, from the records alone: the runs, each distinct software /
machine environment (versions, git revision, devices), the weights of each model (source, id,
sha256), the datasets (annotation file and sha256), every deviation from the paper's protocol
per measurement setup, the tasks that failed or were skipped, and the records' notes.
``stand_in_statement`` says in sentences what was not the real thing: random-init weights,
generated data, and every deviation from the paper's protocol the records list (another
dataset or fewer images, another input size, a device that is not the paper's T4, a backend
that is not TensorRT FP16, ...).

Reports are meant to be published: machine identity (``hostname``) stays in the records and is
never shown; ``ENVIRONMENT_FIELDS`` is what a report may show.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dfine_bench.records.packages import VERSION_KEYS
from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels

#: Environment fields shown in reports, in this order. Others (``hostname``, the Python executable's
#: path) stay in the records: reports are meant to be published.
ENVIRONMENT_FIELDS = (
    "dfine_bench",
    "git_revision",
    "git_dirty",
    "python",
    "torch",
    "cuda",
    "cudnn",
    *(k for k in VERSION_KEYS if k not in ("python", "torch", "dfine_bench")),  # records/packages.py
    "os",
    "cpu_model",
    "cpu_count",
    "gpus",
    "torch_threads",
)
_SPEED_TASKS = ("latency", "throughput")


@dataclass
class Provenance:
    """Provenance tables of a set of records (each a DataFrame of text, possibly empty)."""

    run_ids: list[str]
    environments: pd.DataFrame  # one row per field, one column per distinct environment
    models: pd.DataFrame
    datasets: pd.DataFrame
    deviations: pd.DataFrame
    problems: pd.DataFrame
    notes: pd.DataFrame
    stand_in: list[str]  # stand_in_statement: [] only when nothing is a stand-in or off the protocol
    on_protocol: list[str]  # on_protocol_statement
    has_stand_ins: bool


def _text(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, list) and all(isinstance(x, dict) for x in v):
        return "; ".join(str(x.get("name", x)) for x in v) or "none"
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str)
    return str(v)


def environments_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """Each distinct environment as a column (headed by the runs that used it), fields as rows."""
    envs: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for r in records:
        env = {k: r.environment.get(k) for k in ENVIRONMENT_FIELDS if k in r.environment}
        key = json.dumps(env, sort_keys=True, default=str)
        entry = envs.setdefault(key, (env, []))
        if r.run_id not in entry[1]:
            entry[1].append(r.run_id)
    if not envs:
        return pd.DataFrame()
    data = {}
    for i, (env, runs) in enumerate(envs.values(), start=1):
        head = f"environment {i}: run {', '.join(runs)}" if len(envs) > 1 else f"run {', '.join(runs)}"
        data[head] = [_text(env.get(k)) for k in ENVIRONMENT_FIELDS]
    frame = pd.DataFrame(data, index=list(ENVIRONMENT_FIELDS))
    present = [k for k in ENVIRONMENT_FIELDS if any(k in r.environment for r in records)]
    return frame.loc[present].rename_axis("field").reset_index()


def models_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for r in records:
        m = r.model
        rows.setdefault(
            (m.name, labels.weights_key(m)),
            {
                "model": m.name,
                "family": m.family,
                "FDR": f"yes ({m.fdr_bins} bins)" if m.fdr and m.fdr_bins else ("yes" if m.fdr else "no"),
                "GO-LSD": "yes" if m.go_lsd else "no",
                "weights": labels.weights_label(m),
                "weights source": m.weights_source,
                "weights id": m.weights_id or "—",
                "weights sha256": m.weights_sha256 or "—",
                "stand-in": labels.STAND_IN_WEIGHTS
                if m.random_init
                else (labels.FIXTURE_WEIGHTS if m.weights_source == "fixture" else ""),
            },
        )
    return pd.DataFrame(list(rows.values()))


def datasets_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    rows: dict[tuple[Any, ...], dict[str, str]] = {}
    for r in records:
        d = r.dataset
        if d is None:
            continue
        rows.setdefault(
            (d.name, d.annotations_sha256, d.subset, d.num_images),
            {
                "dataset": d.name,
                "kind": d.kind,
                "images": _text(d.num_images),
                "subset": _text(d.subset),
                "annotations": d.annotations or "—",
                "annotations sha256": d.annotations_sha256 or "—",
                "stand-in": labels.STAND_IN_DATA if d.generated else "",
            },
        )
    return pd.DataFrame(list(rows.values()))


def deviations_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """One row per (setup, deviation): the tasks and models it applies to."""
    rows: dict[tuple[str, str], dict[str, set[str]]] = {}
    for r in records:
        for dev in map(str, r.setup.deviations):  # a Deviation's text
            entry = rows.setdefault((labels.setup_label(r.setup), dev), {"tasks": set(), "models": set()})
            entry["tasks"].add(r.task)
            entry["models"].add(r.model.name)
    return pd.DataFrame(
        [
            {
                "setup": setup,
                "deviation from the paper's protocol": dev,
                "tasks": ", ".join(sorted(e["tasks"])),
                "models": ", ".join(sorted(e["models"])),
            }
            for (setup, dev), e in rows.items()
        ]
    )


def problems_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "record": r.record_id,
                "run": r.run_id,
                "status": r.status,
                "setup": labels.setup_label(r.setup),
                "reason": r.reason or "(no reason recorded)",
            }
            for r in records
            if r.status != "ok"
        ]
    )


def notes_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    notes: dict[str, set[str]] = {}
    for r in records:
        for n in r.notes:
            notes.setdefault(n, set()).add(r.model.name)
    return pd.DataFrame([{"note": n, "models": ", ".join(sorted(m))} for n, m in notes.items()])


#: What each task's numbers are, for the deviation sentences; tasks measured together share one.
_DEVIATION_SUBJECTS = (
    (("evaluation",), "AP"),
    (("complexity",), "Params and GFLOPs"),
    (("latency", "throughput"), "Speed"),
    (("trace",), "Operator traces"),
)
#: What reports say when no record is a stand-in and no measuring record lists a deviation.
NOTHING_OFF_PROTOCOL = (
    "Nothing here is a stand-in or off the paper's protocol: released weights, real data, and no "
    "record lists a deviation from the paper's protocol (dataset, number of images, input size, "
    "device, backend, precision, batch size, what was timed)."
)


def stand_in_statement(records: Sequence[ResultRecord]) -> list[str]:
    """Sentences saying what in these records is a stand-in or off the paper's protocol; [] if nothing.

    Driven by the records alone: random-init weights, generated data, and every ``setup.deviations``
    of the records that measured something (status ``ok``); the runner fills those for each task
    (dataset and number of images, input size, device, backend, precision, batch size, what was
    timed). A failed or skipped record gave no number, so it adds no sentence (it is listed with
    the failed and skipped tasks). An empty list is the only case in which a report may say that
    nothing is a stand-in or off the protocol (``NOTHING_OFF_PROTOCOL``).
    """
    return [*_weights_sentences(records), *_data_sentences(records), *_deviation_sentences(records)]


def _weights_sentences(records: Sequence[ResultRecord]) -> list[str]:
    """What random-init and fixture weights mean for the numbers, naming the models that have them."""
    out: list[str] = []
    random = sorted({r.model.name for r in records if r.model.random_init})
    if random:
        out.append(
            f"Random-init weights (no released weights were loaded) for {', '.join(random)}: "
            "their AP is not these models' accuracy. Params, GFLOPs and latency depend on the "
            "architecture, not the weights."
        )
    fixture = sorted({r.model.name for r in records if r.model.weights_source == "fixture"})
    if fixture:
        out.append(
            f"Fixture weights for {', '.join(fixture)}: trained by this project on generated data "
            "(another seed than the evaluation split), so its AP on generated data is a real, held-out "
            "fixture number that checks the pipeline end to end. It is never a COCO number."
        )
    return out


def _data_sentences(records: Sequence[ResultRecord]) -> list[str]:
    """What generated data in place of COCO means, naming the generated datasets."""
    generated = sorted(
        {labels.dataset_label(r.dataset) for r in records if r.dataset and r.dataset.generated}
    )
    if not generated:
        return []
    return [
        f"Generated data instead of COCO val2017 ({'; '.join(generated)}): AP on it says nothing "
        "about any model's accuracy on COCO."
    ]


def _deviation_sentences(records: Sequence[ResultRecord]) -> list[str]:
    """One sentence per subject (AP, complexity, speed, traces) whose measuring records list deviations."""
    out: list[str] = []
    measured = [r for r in records if r.status == "ok"]
    for tasks, subject in _DEVIATION_SUBJECTS:
        group = [r for r in measured if r.task in tasks]
        items = [_deviation_item(dev, rs, group) for dev, rs in _by_deviation(group).items()]
        if items:
            out.append(f"{subject} not measured as in the paper: {'; '.join(items)}.")
    return out


def _by_deviation(records: Sequence[ResultRecord]) -> dict[str, list[ResultRecord]]:
    """Each deviation the records list (first-seen order) with the records that list it."""
    out: dict[str, list[ResultRecord]] = {}
    for r in records:
        for dev in dict.fromkeys(map(str, r.setup.deviations)):  # a Deviation's text
            out.setdefault(dev, []).append(r)
    return out


def _deviation_item(dev: str, having: Sequence[ResultRecord], group: Sequence[ResultRecord]) -> str:
    """``dev``, naming the tasks / models it applies to when that is not all of the group's."""
    tasks = sorted({r.task for r in having})
    models = sorted({r.model.name for r in having})
    some_tasks = set(tasks) != {r.task for r in group}
    some_models = set(models) != {r.model.name for r in group}
    if some_tasks and some_models:
        return f"{dev} ({', '.join(tasks)} of {', '.join(models)})"
    if some_tasks or some_models:
        return f"{dev} ({', '.join(tasks if some_tasks else models)} only)"
    return dev


def on_protocol_statement(records: Sequence[ResultRecord]) -> list[str]:
    """The speed measurements that list no deviation from the paper's protocol, as one sentence."""
    on_protocol = [
        r for r in records if r.task in _SPEED_TASKS and r.status == "ok" and not r.setup.deviations
    ]
    if not on_protocol:
        return []
    devices = sorted({labels.device_label(r.setup) for r in on_protocol})
    return [
        f"Measured under the paper's protocol on {', '.join(devices)}: {len(on_protocol)} speed record(s)."
    ]


def provenance(records: Sequence[ResultRecord]) -> Provenance:
    records = list(records)
    return Provenance(
        run_ids=sorted({r.run_id for r in records}),
        environments=environments_frame(records),
        models=models_frame(records),
        datasets=datasets_frame(records),
        deviations=deviations_frame(records),
        problems=problems_frame(records),
        notes=notes_frame(records),
        stand_in=stand_in_statement(records),
        on_protocol=on_protocol_statement(records),
        has_stand_ins=any(r.is_stand_in for r in records),
    )
