"""Claims as data: the ``Claim`` type and reading a claims file (``suites/claims/<name>.yaml``).

A claims file has model ``rows`` (one model and weights release; each metric given becomes one
claim) and ``relative`` claims (an ordering or gain between two models). Every claim names its
source (table or figure) and how it is checked (``kind``, derived from the metric for rows).
A misspelled metric, relation or condition fails on load with the file, entry and allowed values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.records.metrics import COCO_STATS, METRICS

#: How a claim is checked (see ``dfine_bench.claims.check``).
KINDS = ("exact", "tolerance", "hardware", "relative")
#: Row metrics and the kind each implies.
ROW_METRIC_KINDS: dict[str, str] = {
    "params": "exact",
    "gflops": "exact",
    **dict.fromkeys(COCO_STATS, "tolerance"),
    "latency_mean": "hardware",
    "latency_median": "hardware",
    "fps": "hardware",
}
RELATIONS = ("less", "greater", "gain", "ratio")
#: Conditions a relative claim may require of the records it compares.
CONDITIONS = ("gpu", "real_weights", "coco")
#: Weights releases a row may name (matched against the weights id; see ``weights_release``).
RELEASES = ("coco", "obj2coco", "obj365")
_ROW_KEYS = {"model", "release", "source", "note", "counter"}
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
    "note",
}


@dataclass(frozen=True)
class Protocol:
    """The conditions under which the paper measured (what ``tolerance``/``hardware`` claims need)."""

    description: str = ""
    device: str = "T4"
    backend: str = "tensorrt"
    dtype: str = "fp16"
    batch_size: int = 1
    input_size: tuple[int, int] = (640, 640)
    coco_images: int = 5000


@dataclass(frozen=True)
class Claim:
    """One checkable statement. Rows give ``model`` + ``claimed``; relative claims give ``a``/``b``.

    ``decimals`` is how many decimals the claimed value is written with (exact claims compare
    after rounding to it); ``tolerance`` is absolute for AP and gains, relative for latency.
    ``counted_elsewhere``: the paper copied this params/GFLOPs figure from the model's own
    authors, who used another counter, so an exact match is not expected (shown for reference).
    """

    id: str
    source: str
    kind: str
    metric: str
    unit: str
    claimed: float | None = None
    model: str | None = None
    release: str | None = None
    decimals: int = 0
    tolerance: float | None = None
    a: str | None = None
    b: str | None = None
    relation: str | None = None
    conditions: tuple[str, ...] = ()
    text: str = ""
    note: str = ""
    counted_elsewhere: bool = False

    @property
    def subject(self) -> str:
        """The model(s) the claim is about, for tables."""
        return self.model if self.model else f"{self.a} vs {self.b}"

    def describe(self) -> str:
        if self.text:
            return self.text
        release = f" ({self.release} weights)" if self.release and self.kind == "tolerance" else ""
        return f"{self.model}{release}: {self.metric} = {self.claimed:g} {self.unit}".strip()


@dataclass(frozen=True)
class ClaimSet:
    """The claims of one file, with the protocol they were measured under."""

    name: str
    title: str
    path: Path
    protocol: Protocol
    claims: tuple[Claim, ...] = field(default_factory=tuple)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)

    def models(self) -> set[str]:
        return {m for c in self.claims for m in (c.model, c.a, c.b) if m}


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


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _row_claims(row: Any, index: int, path: Path, defaults: dict[str, Any]) -> list[Claim]:
    where = f"{path}: rows[{index}]"
    if not isinstance(row, dict) or "model" not in row or "source" not in row:
        raise ConfigError(f"{where} needs at least 'model' and 'source' (got {row!r})")
    release = row.get("release", "coco")
    counter = row.get("counter", "paper")
    if counter not in ("paper", "other"):
        raise ConfigError(f"{where}: counter {counter!r} is not 'paper' or 'other'")
    if release not in RELEASES:
        raise ConfigError(f"{where}: release {release!r} is not one of {', '.join(RELEASES)}")
    claims = []
    for key, value in row.items():
        if key in _ROW_KEYS:
            continue
        if key not in ROW_METRIC_KINDS:
            raise ConfigError(
                f"{where}: unknown metric {key!r}; row metrics are {', '.join(ROW_METRIC_KINDS)} "
                f"(and the keys {', '.join(sorted(_ROW_KEYS))})"
            )
        kind = ROW_METRIC_KINDS[key]
        tolerance = None
        if kind == "tolerance":
            tolerance = float(defaults.get("AP_tolerance", 0.2))
        elif kind == "hardware":
            tolerance = float(defaults.get("latency_tolerance", 0.10))
        source = str(row["source"])
        claims.append(
            Claim(
                id=f"{row['model']}.{release}.{key}.{_slug(source)}",
                source=source,
                kind=kind,
                metric=key,
                unit=METRICS[key].unit,
                claimed=_number(value, f"{where}.{key}"),
                model=str(row["model"]),
                release=release,
                decimals=_decimals(value),
                tolerance=tolerance,
                note=str(row.get("note", "")),
                counted_elsewhere=counter == "other" and kind == "exact",
            )
        )
    return claims


def _relative_claim(entry: Any, index: int, path: Path) -> Claim:
    where = f"{path}: relative[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a mapping")
    unknown = set(entry) - _RELATIVE_KEYS
    if unknown:
        allowed = ", ".join(sorted(_RELATIVE_KEYS))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {allowed}")
    missing = [k for k in ("id", "source", "metric", "a", "b", "relation") if k not in entry]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)}")
    if entry["metric"] not in METRICS:
        raise ConfigError(f"{where}: unknown metric {entry['metric']!r}; known: {', '.join(METRICS)}")
    if entry["relation"] not in RELATIONS:
        raise ConfigError(f"{where}: relation {entry['relation']!r} is not one of {', '.join(RELATIONS)}")
    conditions = tuple(entry.get("conditions", ()))
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise ConfigError(f"{where}: unknown condition(s) {', '.join(bad)}; allowed: {', '.join(CONDITIONS)}")
    claimed = entry.get("claimed")
    if entry["relation"] in ("gain", "ratio") and claimed is None:
        raise ConfigError(f"{where}: relation {entry['relation']} needs 'claimed' (and 'tolerance')")
    return Claim(
        id=str(entry["id"]),
        source=str(entry["source"]),
        kind="relative",
        metric=str(entry["metric"]),
        unit=METRICS[entry["metric"]].unit if entry["relation"] != "ratio" else "ratio",
        claimed=None if claimed is None else _number(claimed, f"{where}.claimed"),
        a=str(entry["a"]),
        b=str(entry["b"]),
        relation=str(entry["relation"]),
        tolerance=None
        if entry.get("tolerance") is None
        else _number(entry["tolerance"], f"{where}.tolerance"),
        conditions=conditions,
        text=str(entry.get("text", "")),
        note=str(entry.get("note", "")),
    )


def _protocol(data: Any, path: Path) -> Protocol:
    if data is None:
        return Protocol()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: 'protocol' must be a mapping")
    known = Protocol.__dataclass_fields__
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown protocol key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(known)}"
        )
    values = dict(data)
    if "input_size" in values:
        values["input_size"] = tuple(int(v) for v in values["input_size"])
    return Protocol(**values)


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
    defaults = data.get("defaults") or {}
    claims: list[Claim] = []
    for i, row in enumerate(data.get("rows") or []):
        claims.extend(_row_claims(row, i, path, defaults))
    for i, entry in enumerate(data.get("relative") or []):
        claims.append(_relative_claim(entry, i, path))
    ids = [c.id for c in claims]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"claims file {path}: duplicate claim id(s) {', '.join(duplicates)}")
    return ClaimSet(
        name=str(data.get("name", path.stem)),
        title=str(data.get("title", path.stem)),
        path=path,
        protocol=_protocol(data.get("protocol"), path),
        claims=tuple(claims),
    )
