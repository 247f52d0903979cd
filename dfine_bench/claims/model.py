"""Claims as data: reading a claims file (``suites/claims/<name>.yaml``) into ``Claim``s.

The types themselves (``Claim``, ``ClaimSet``, ``ClaimConditions``, ``RELATIONS`` ...) are in
``dfine_bench.claims.claim`` and re-exported here.

A claims file has model ``rows`` (one model and weights release; each metric given becomes one
claim) and ``relative`` claims (an ordering or gain between two models). Every claim names its
source (table or figure) and how it is checked (``kind``, derived from the metric for rows).
Anything misspelled or mistyped (a metric, relation, condition, key or value) fails on load with
one ``ConfigError`` naming the file, the entry and what is allowed, never with a traceback or a
silently ignored key.

A claim that can never get a verdict here says why (``unmeasurable: "<reason>"``: it is always
"not measured", with that reason) and may name committed small-scale ``evidence`` to show beside it
(see ``dfine_bench.claims.evidence``); only such a relative claim may be about a quantity no record
measures (a metric outside the catalogue, with its ``unit``), e.g. training time per epoch.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from dfine_bench.claims.claim import CONDITION_TASKS as CONDITION_TASKS
from dfine_bench.claims.claim import CONDITIONS as CONDITIONS
from dfine_bench.claims.claim import KINDS as KINDS
from dfine_bench.claims.claim import RELATIONS as RELATIONS
from dfine_bench.claims.claim import RELEASES as RELEASES
from dfine_bench.claims.claim import Claim as Claim
from dfine_bench.claims.claim import ClaimConditions as ClaimConditions
from dfine_bench.claims.claim import ClaimSet as ClaimSet
from dfine_bench.claims.claim import row_metric_kinds as row_metric_kinds
from dfine_bench.claims.claim import task_of_metric as task_of_metric
from dfine_bench.claims.evidence import claim_marks, evidence_sources
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.records.metrics import find_metric, get_metric, list_metrics

#: ``defaults`` keys and what each sets.
DEFAULT_KEYS: dict[str, float] = {
    "AP_tolerance": 0.2,  # absolute, AP points
    "latency_tolerance": 0.10,  # relative
}
TOP_LEVEL_KEYS = ("name", "title", "protocol", "defaults", "evidence", "rows", "relative")
_ROW_KEYS = {"model", "release", "source", "note", "counter", "erratum", "unmeasurable", "evidence"}
_RELATIVE_KEYS = {
    "id",
    "source",
    "metric",
    "a",
    "b",
    "relation",
    "claimed",
    "tolerance",
    "text",
    "conditions",
    "release",
    "note",
    "unmeasurable",
    "evidence",
    "unit",
}


def claims_dir() -> Path:
    from dfine_bench.config.loading import suites_dir

    return suites_dir() / "claims"


def available_claims() -> list[str]:
    folder = claims_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _decimals(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, int):
        return 0
    text = repr(float(value))
    return len(text.split(".", 1)[1].rstrip("0")) if "." in text and "e" not in text else 0


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _number(value: Any, where: str, *, non_negative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if non_negative and value < 0:
        raise ConfigError(f"{where}: expected a number >= 0, got {value!r}")
    return float(value)


def _text(value: Any, where: str) -> str:
    """A string field; YAML turns unquoted ``yes``/``1.0`` into other types, which would be a typo."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _unknown_keys(data: dict[str, Any], allowed: Any, where: str) -> None:
    unknown = sorted(str(k) for k in set(data) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _entries(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: '{key}' must be a list of entries (got {value!r})")
    return value


def _defaults(data: Any, path: Path) -> dict[str, float]:
    """The ``defaults`` block, every key known and every value a number (else one clear error)."""
    if data is None:
        return dict(DEFAULT_KEYS)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping (got {data!r})")
    _unknown_keys(data, DEFAULT_KEYS, f"{path}: defaults")
    values = dict(DEFAULT_KEYS)
    for key, value in data.items():
        values[key] = _number(value, f"{path}: defaults.{key}", non_negative=True)
    return values


def _row_claims(
    row: Any, index: int, path: Path, defaults: dict[str, float], evidence: dict[str, Path]
) -> list[Claim]:
    where = f"{path}: rows[{index}]"
    if not isinstance(row, dict) or "model" not in row or "source" not in row:
        raise ConfigError(f"{where} needs at least 'model' and 'source' (got {row!r})")
    model = _text(row["model"], f"{where}.model")
    source = _text(row["source"], f"{where}.source")
    release = row.get("release", "coco")
    counter = row.get("counter", "paper")
    if counter not in ("paper", "other"):
        raise ConfigError(f"{where}: counter {counter!r} is not 'paper' or 'other'")
    if release not in RELEASES:
        raise ConfigError(f"{where}: release {release!r} is not one of {', '.join(RELEASES)}")
    erratum = _text(row["erratum"], f"{where}.erratum") if "erratum" in row else ""
    unmeasurable, shown = claim_marks(row, where, evidence)
    claims = []
    kinds = row_metric_kinds()
    for key, value in row.items():
        if key in _ROW_KEYS:
            continue
        if key not in kinds:
            raise ConfigError(
                f"{where}: unknown metric {key!r}; row metrics are {', '.join(kinds)} "
                f"(and the keys {', '.join(sorted(_ROW_KEYS))})"
            )
        kind = kinds[key]
        tolerance = None
        if kind == "tolerance":
            tolerance = defaults["AP_tolerance"]
        elif kind == "hardware":
            tolerance = defaults["latency_tolerance"]
        claims.append(
            Claim(
                id=f"{model}.{release}.{key}.{_slug(source)}",
                source=source,
                kind=kind,
                metric=key,
                unit=get_metric(key).unit,
                claimed=_number(value, f"{where}.{key}"),
                model=model,
                release=release,
                decimals=_decimals(value),
                tolerance=tolerance,
                note=str(row.get("note", "")),
                counted_elsewhere=counter == "other" and kind == "exact",
                erratum=erratum,
                unmeasurable=unmeasurable,
                evidence=shown,
            )
        )
    if erratum and not claims:
        raise ConfigError(f"{where}: 'erratum' needs a metric in the same row")
    return claims


def _conditions(entry: dict[str, Any], metric: str, where: str) -> tuple[str, ...]:
    raw = entry.get("conditions", [])
    allowed = ", ".join(CONDITIONS)
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ConfigError(
            f"{where}: conditions must be a list such as [gpu] (got {raw!r}); allowed: {allowed}"
        )
    bad = [c for c in raw if c not in CONDITIONS]
    if bad:
        raise ConfigError(f"{where}: unknown condition(s) {', '.join(bad)}; allowed: {allowed}")
    task = task_of_metric(metric)
    misplaced = [c for c in raw if task not in CONDITION_TASKS[c]]
    if misplaced:
        raise ConfigError(
            f"{where}: condition(s) {', '.join(misplaced)} do not apply to {metric} (a {task} metric): "
            + "; ".join(f"{c} applies to {', '.join(CONDITION_TASKS[c])} metrics" for c in misplaced)
        )
    return tuple(raw)


def _relative_metric(entry: dict[str, Any], where: str) -> str:
    """The claim's metric's unit: a catalogue metric's, or (only for an ``unmeasurable`` claim)
    the ``unit`` of a named quantity that no record measures."""
    metric = entry["metric"]
    known = isinstance(metric, str) and find_metric(metric) is not None
    if known and "unit" in entry:
        raise ConfigError(f"{where}: 'unit' is for quantities outside the metric catalogue; {metric} has one")
    if known:
        return get_metric(metric).unit
    if (
        isinstance(metric, str)
        and "unmeasurable" in entry
        and "unit" in entry
        and not entry.get("conditions")
    ):
        return _text(entry["unit"], f"{where}.unit")
    raise ConfigError(
        f"{where}: unknown metric {metric!r}; known: {', '.join(list_metrics())} "
        "(a quantity no record measures needs 'unmeasurable' and 'unit', and no conditions)"
    )


def _relative_claim(entry: Any, index: int, path: Path, evidence: dict[str, Path]) -> Claim:
    where = f"{path}: relative[{index}]"
    _relative_shape(entry, where)
    unit = _relative_metric(entry, where)
    unmeasurable, shown = claim_marks(entry, where, evidence)
    if entry["a"] == entry["b"]:
        raise ConfigError(f"{where}: a and b are both {entry['a']!r}; a relative claim compares two models")
    relation = entry["relation"]
    if relation not in RELATIONS:
        raise ConfigError(f"{where}: relation {relation!r} is not one of {', '.join(RELATIONS)}")
    measured = find_metric(str(entry["metric"])) is not None  # else an unmeasurable quantity
    conditions = _conditions(entry, entry["metric"], where) if measured and "conditions" in entry else ()
    valued = _valued(entry, relation, where)
    release = _relative_release(entry, conditions, where)
    return Claim(
        id=_text(entry["id"], f"{where}.id"),
        source=_text(entry["source"], f"{where}.source"),
        kind="relative",
        metric=str(entry["metric"]),
        unit=unit if relation != "ratio" else "ratio",
        claimed=_number(entry["claimed"], f"{where}.claimed") if valued else None,
        a=_text(entry["a"], f"{where}.a"),
        b=_text(entry["b"], f"{where}.b"),
        relation=str(relation),
        release=release,
        tolerance=_number(entry["tolerance"], f"{where}.tolerance", non_negative=True) if valued else None,
        conditions=conditions,
        text=str(entry.get("text", "")),
        note=str(entry.get("note", "")),
        unmeasurable=unmeasurable,
        evidence=shown,
    )


def _relative_shape(entry: Any, where: str) -> None:
    """A relative entry is a mapping of known keys with every required one."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a mapping")
    _unknown_keys(entry, _RELATIVE_KEYS, where)
    missing = [k for k in ("id", "source", "metric", "a", "b", "relation") if k not in entry]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)}")


def _valued(entry: dict[str, Any], relation: str, where: str) -> bool:
    """Whether the relation carries a value (gain, ratio: then ``claimed`` and ``tolerance`` are needed)."""
    valued = relation in ("gain", "ratio")
    if valued and (entry.get("claimed") is None or entry.get("tolerance") is None):
        # without a tolerance a measured gain would have to equal the printed one to the last bit
        raise ConfigError(f"{where}: relation {relation} needs 'claimed' and 'tolerance'")
    if not valued and ("claimed" in entry or "tolerance" in entry):
        raise ConfigError(
            f"{where}: 'claimed'/'tolerance' apply to the relations gain and ratio only, not {relation}"
        )
    return valued


def _relative_release(entry: dict[str, Any], conditions: tuple[str, ...], where: str) -> Any:
    """The weights release a relative claim is about: only with the condition real_weights."""
    release = entry.get("release")
    if release is not None:
        if release not in RELEASES:
            raise ConfigError(f"{where}: release {release!r} is not one of {', '.join(RELEASES)}")
        if "real_weights" not in conditions:
            raise ConfigError(f"{where}: 'release' needs the condition real_weights")
    return release


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _protocol(data: Any, path: Path) -> ClaimConditions:
    """The ``protocol`` block: keys and value types checked; what it leaves out is ``PAPER_T4``'s."""
    if data is None:
        return ClaimConditions()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: 'protocol' must be a mapping (got {data!r})")
    known = [f.name for f in fields(ClaimConditions)]
    _unknown_keys(data, known, f"{path}: protocol")
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}: protocol.{key}"
        if key in ("batch_size", "coco_images"):
            values[key] = _positive_int(value, where)
        elif key == "input_size":
            if not isinstance(value, list) or len(value) != 2:
                raise ConfigError(f"{where}: expected [height, width], got {value!r}")
            values[key] = tuple(_positive_int(v, where) for v in value)
        else:
            values[key] = _text(value, where)
    return ClaimConditions(**values)


def load_claims(name_or_path: str | Path) -> ClaimSet:
    """Read a claims file: a name under ``suites/claims/`` (``dfine_paper``) or a path to a YAML file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
        if not path.is_file():
            raise ConfigError(f"claims file {path} does not exist")
    else:
        path = claims_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UnknownNameError("claims", str(name_or_path), available_claims())
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"claims file {path} is not readable YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"claims file {path} must be a mapping with 'rows' and/or 'relative'")
    _unknown_keys(data, TOP_LEVEL_KEYS, str(path))
    defaults = _defaults(data.get("defaults"), path)
    evidence = evidence_sources(data.get("evidence"), path)
    claims: list[Claim] = []
    for i, row in enumerate(_entries(data, "rows", path)):
        claims.extend(_row_claims(row, i, path, defaults, evidence))
    for i, entry in enumerate(_entries(data, "relative", path)):
        claims.append(_relative_claim(entry, i, path, evidence))
    ids = [c.id for c in claims]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"claims file {path}: duplicate claim id(s) {', '.join(duplicates)}")
    return ClaimSet(
        name=_text(data["name"], f"{path}: name") if "name" in data else path.stem,
        title=_text(data["title"], f"{path}: title") if "title" in data else path.stem,
        path=path,
        protocol=_protocol(data.get("protocol"), path),
        claims=tuple(claims),
    )
