"""Reading a baseline file back: every field type-checked, anything unreadable refused.

``load_baseline`` (and ``parse_baseline`` for a document already read) refuses a corrupt file,
another format or record schema version, a field of the wrong type or an impossible number with a
``BaselineError`` naming the file, the field and the fix. Baselines saved from records of schema
version 1 still load (their entries hold no deviations, the one thing version 2 changed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dfine_bench.checks.entries import (
    BASELINE_FORMAT,
    BASELINE_FORMAT_VERSION,
    Baseline,
    BaselineError,
    Entry,
    check_finite,
)
from dfine_bench.records.schema import READABLE_VERSIONS, STATUSES


def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise BaselineError(f"{where} lacks the field {key!r}: restore the file or re-save the baseline")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BaselineError(
            f"{where}: field {key!r} should be {names}, not {type(value).__name__}: "
            "restore the file or re-save the baseline"
        )
    return value


_RESAVE = "re-save it with `dfine-bench baseline save <run> --out <file>`"


def _check_header(doc: Any, name: str) -> tuple[int, int]:
    """The format and record schema versions of a baseline document, refused unless readable."""
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise BaselineError(
            f'{name} is not a dfine-bench baseline (no "format": "{BASELINE_FORMAT}" field): {_RESAVE}'
        )
    version = doc.get("format_version")
    if version != BASELINE_FORMAT_VERSION:
        raise BaselineError(
            f"{name}: baseline format_version {version!r}, but this dfine-bench reads version "
            f"{BASELINE_FORMAT_VERSION}: {_RESAVE}"
        )
    record_version = doc.get("record_schema_version")
    if record_version not in READABLE_VERSIONS:
        raise BaselineError(
            f"{name}: saved from records of schema version {record_version!r}, but this dfine-bench "
            f"reads schema versions {', '.join(map(str, READABLE_VERSIONS))}; the numbers may mean other "
            f"things: run the suite with this version and {_RESAVE}"
        )
    return version, record_version


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tolerances(doc: Mapping[str, Any], name: str) -> dict[str, float]:
    tolerances = doc.get("tolerances") or {}
    if not isinstance(tolerances, dict) or not all(_is_number(v) for v in tolerances.values()):
        raise BaselineError(f"{name}: field 'tolerances' should map metric names to numbers")
    return {k: float(v) for k, v in tolerances.items()}


def _numbers(raw: Mapping[str, Any], where: str) -> tuple[dict[str, float | None], list[float] | None]:
    """A baseline record's metric values and latency samples, type-checked."""
    metrics = _require(raw, "metrics", dict, where)
    for mname, value in metrics.items():
        if value is not None and not _is_number(value):
            raise BaselineError(f"{where}: metric {mname!r} should be a number or null, not {value!r}")
    samples = raw.get("samples_ms")
    if samples is not None and (not isinstance(samples, list) or not all(_is_number(s) for s in samples)):
        raise BaselineError(f"{where}: field 'samples_ms' should be a list of numbers")
    values = {k: (None if v is None else float(v)) for k, v in metrics.items()}
    return values, [float(s) for s in samples] if samples is not None else None


def _parse_entry(rid: str, raw: Any, name: str) -> Entry:
    """One record of a baseline document, every field type-checked."""
    where = f"{name}: records[{rid!r}]"
    if not isinstance(raw, dict):
        raise BaselineError(f"{where} should be an object: {_RESAVE}")
    metrics, samples = _numbers(raw, where)
    dataset = raw.get("dataset")
    if dataset is not None and not isinstance(dataset, dict):
        raise BaselineError(f"{where}: field 'dataset' should be an object or null")
    status = _require(raw, "status", str, where)
    if status not in STATUSES:
        raise BaselineError(
            f"{where}: status {status!r} is not one of {', '.join(STATUSES)}: a record that is neither "
            f"cannot be gated; {_RESAVE}"
        )
    return Entry(
        record_id=rid,
        task=_require(raw, "task", str, where),
        status=status,
        reason=raw.get("reason"),
        model=_require(raw, "model", dict, where),
        dataset=dataset,
        setup=_require(raw, "setup", dict, where),
        metrics=metrics,
        samples_ms=samples,
        samples_kind=raw.get("samples_kind"),
        samples_n=raw.get("samples_n"),
        fingerprint=raw["fingerprint"] if isinstance(raw.get("fingerprint"), dict) else None,
        bootstrap=_parse_bootstrap(raw, where),
    )


def _parse_bootstrap(raw: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """A baseline record's ``details.bootstrap``; a baseline saved before it was kept has none."""
    details = raw.get("details")
    if details is None:
        return None
    if not isinstance(details, dict):
        raise BaselineError(f"{where}: field 'details' should be an object: restore the file or {_RESAVE}")
    boot = details.get("bootstrap")
    if boot is not None and not (isinstance(boot, dict) and isinstance(boot.get("values"), dict)):
        raise BaselineError(
            f"{where}: field 'details.bootstrap' should be an object with 'values': "
            f"restore the file or {_RESAVE}"
        )
    return boot


def parse_baseline(doc: Any, path: Path | None = None) -> Baseline:
    """Validate a baseline document (see ``load_baseline``)."""
    name = str(path) if path else "baseline"
    version, record_version = _check_header(doc, name)
    provenance = _require(doc, "provenance", dict, name)
    tolerances = _tolerances(doc, name)
    raw_records = _require(doc, "records", dict, name)
    if not raw_records:
        raise BaselineError(f"{name}: field 'records' is empty: {_RESAVE}")
    entries = {rid: _parse_entry(rid, raw, name) for rid, raw in raw_records.items()}
    check_finite(entries, name)
    return Baseline(
        entries=entries,
        provenance=provenance,
        tolerances=tolerances,
        path=path,
        format_version=version,
        record_schema_version=record_version,
    )


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file; any problem is a ``BaselineError`` naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(
            f"baseline file {path} not found: create it with `dfine-bench baseline save <run> --out {path}`"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BaselineError(
            f"{path} is not a text file: restore it from git or re-save the baseline"
        ) from None
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
            "restore it from git or re-save the baseline"
        ) from None
    return parse_baseline(doc, path)
