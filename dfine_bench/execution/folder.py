"""The run folder: which one a run writes into, and that it belongs to one resolved config.

A run folder stores the identity of the settings that made its records (every config value that
changes a result; not where output goes, how it is shown or which claims/tolerances a report
checks). A run resumes in a folder only when the identity matches: resuming ``cfgA`` with other
settings would report ``cfgA``'s records as the new settings' results. A mismatch is refused with
the differing keys, before anything in the folder is touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfine_bench.config.settings import OutputSettings
from dfine_bench.errors import ConfigError
from dfine_bench.records.store import RunStore, new_run_id

if TYPE_CHECKING:
    from dfine_bench.execution.plan import Unit

log = logging.getLogger("dfine_bench")

#: Config keys that do not change any result (dotted prefixes).
NOT_RESULTS = (
    "output",
    "hydra",
    "suite.description",
    "suite.report",
    "suite.claims",
    "suite.baseline",
    "suite.tolerances",
    "protocol.description",
    "evaluation.num_workers",
    "evaluation.resume",
)


def run_identity(resolved_config: Mapping[str, Any], backends: list[dict[str, Any]]) -> dict[str, Any]:
    """The settings that change results: the resolved config without ``NOT_RESULTS``, plus the
    backends the run profiles (as resolved, so a changed backend file counts)."""
    ident = json.loads(json.dumps(dict(resolved_config), default=str))
    for dotted in NOT_RESULTS:
        *parents, last = dotted.split(".")
        node: Any = ident
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    ident["backends"] = json.loads(json.dumps(backends, default=str))
    return ident


def identity_hash(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): d}


def identity_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for each setting that differs."""
    a, b = _flatten(dict(old)), _flatten(dict(new))
    return [
        f"{k}: {json.dumps(a.get(k))} -> {json.dumps(b.get(k))}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def check_same_settings(store: RunStore, meta: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    """Refuse to resume ``store`` with settings other than the ones its records were made with."""
    old = meta.get("identity")
    if old == identity:
        return
    run_id = store.run_id
    new_id = f"output.run_id={run_id}-2"
    if meta.get("kind") == "evaluate":
        raise ConfigError(
            f"output.run_id={run_id}: {store.run_dir} holds a `dfine-bench evaluate` record, not a run; "
            f"choose a new run id (e.g. {new_id})"
        )
    if not isinstance(old, dict):
        raise ConfigError(
            f"output.run_id={run_id}: {store.run_dir} was written by an older dfine-bench that did not "
            "store its settings' identity, so resuming it could mix settings; "
            f"choose a new run id (e.g. {new_id})"
        )
    diff = identity_diff(old, identity)
    shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
    raise ConfigError(
        f"output.run_id={run_id}: {store.run_dir} holds results of other settings ({shown}); "
        f"its records are not this config's results: choose a new run id (e.g. {new_id}) "
        "or resume with the original settings"
    )


def open_run(output: OutputSettings, suite: str, identity: Mapping[str, Any]) -> RunStore:
    """Pick and lock the run folder: the given id (resumed only with the same settings), else the
    newest unfinished run of the same settings (``output.resume``), else a new one."""
    output.results_dir.mkdir(parents=True, exist_ok=True)
    if output.run_id:
        return _open_named(output, output.run_id, identity)
    if output.resume:
        store = _newest_unfinished(output.results_dir, identity)
        if store is not None:
            return store
    while True:
        store = RunStore(output.results_dir / new_run_id(suite))
        if not store.run_dir.exists() and store.try_lock():
            return store


def _open_named(output: OutputSettings, run_id: str, identity: Mapping[str, Any]) -> RunStore:
    """``output.run_id``'s folder, locked: a new one, or a resume of the same settings."""
    store = RunStore(output.results_dir / run_id)
    meta = store.read_meta()
    if meta and not output.resume:
        raise ConfigError(
            f"output.run_id={run_id}: {store.run_dir} already holds a run; "
            "choose another run id or set output.resume=true to continue it"
        )
    if not store.try_lock():
        raise ConfigError(f"{store.run_dir} is being written by another process; choose another run id")
    if meta:
        try:
            check_same_settings(store, meta, identity)
        except ConfigError:
            store.unlock()
            raise
    return store


def _newest_unfinished(results: Path, identity: Mapping[str, Any]) -> RunStore | None:
    """The newest unfinished run of the same settings that no other process holds, locked."""
    chash = identity_hash(identity)
    candidates = []
    for meta_file in results.glob("*/run.json"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        same = meta.get("config_hash") == chash and meta.get("identity") == identity
        if same and meta.get("status") != "complete":
            candidates.append((meta.get("started_at", ""), meta_file.parent))
    for _, run_dir in sorted(candidates, reverse=True):
        store = RunStore(run_dir)
        if store.try_lock():
            log.info("resuming unfinished run %s (same settings)", run_dir.name)
            return store
    return None


def units_done(store: RunStore, units: Iterable[Unit], completed: Iterable[str]) -> set[str]:
    """The units ``run.json`` lists as completed whose records are all still on disk and readable.

    A record file deleted or truncated since (by hand, a full disk, a copy that stopped) makes its
    unit run again on resume, rather than the run reporting "all tasks already done" with the
    record missing."""
    listed = set(completed)
    done: set[str] = set()
    for unit in units:
        if unit.id not in listed:
            continue
        missing = [r for r in unit.record_ids() if not store.has_record(r)]
        if missing:
            log.warning(
                "%s: marked done, but its record %s is missing or unreadable: running it again",
                unit.id,
                missing[0],
            )
        else:
            done.add(unit.id)
    return done


@contextmanager
def run_log(run_dir: Path, level: str) -> Iterator[None]:
    """Log to the console and to ``<run>/run.log`` for the duration of the run."""
    root = logging.getLogger("dfine_bench")
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def asdict_spec(spec: Any) -> dict[str, Any]:
    """A resolved backend spec as plain data (for the run's identity)."""
    data = asdict(spec) if hasattr(spec, "__dataclass_fields__") else dict(vars(spec))
    return json.loads(json.dumps(data, default=str))


def describe_data(data: Any) -> str:
    """A run's data identity in a few words (annotations hash, image count, files hash)."""
    if not isinstance(data, dict):
        return "none"
    files = data.get("images_identity")
    shown = f"annotations {str(data.get('annotations_sha256'))[:12]}, {data.get('images')} images"
    return shown + (f" (files {str(files)[:8]})" if files else " (image files not recorded)")


__all__ = [
    "asdict_spec",
    "check_same_settings",
    "describe_data",
    "identity_diff",
    "identity_hash",
    "open_run",
    "run_identity",
    "run_log",
    "units_done",
]
