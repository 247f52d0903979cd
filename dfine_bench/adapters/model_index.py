"""The index of built-in model specs: what ``list models`` shows, read without importing torch.

``model_index.json`` (next to this module, generated) holds every built-in ``ModelSpec`` with its
parameter count, measured once by building each model on the meta device, and the sha256 of the
family modules it was generated from. The registry uses it only while those hashes match the
installed sources; otherwise it imports the family modules (slower, never wrong). Regenerate
after editing a family module::

    python -m dfine_bench.adapters.model_index
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfine_bench.adapters.spec import ModelSpec
from dfine_bench.errors import DfineBenchError

log = logging.getLogger(__name__)

INDEX_FILE = Path(__file__).with_name("model_index.json")
REGENERATE = "python -m dfine_bench.adapters.model_index"
_HERE = Path(__file__).parent
#: Fields stored as tuples in a ``ModelSpec`` (JSON gives lists back).
_TUPLES = ("input_size", "hub_ids", "weights_formats")


def source_hashes(modules: Sequence[str]) -> dict[str, str]:
    """sha256 of each built-in family module's source (and of the spec definition itself)."""
    hashes = {}
    for module in (*modules, "dfine_bench.adapters.spec"):
        path = _HERE / f"{module.rsplit('.', 1)[-1]}.py"
        hashes[module] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return hashes


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    data = dataclasses.asdict(spec)
    data["releases"] = {tag: list(sources) for tag, sources in spec.releases.items()}
    return data


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    values = dict(data)
    for name in _TUPLES:
        values[name] = tuple(values[name])
    values["releases"] = {tag: tuple(sources) for tag, sources in values.get("releases", {}).items()}
    return ModelSpec(**values)


def read_index(path: Path = INDEX_FILE) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def builtin_specs(modules: Sequence[str], path: Path = INDEX_FILE) -> list[ModelSpec] | None:
    """The indexed built-in specs, or None when the index is missing or out of date."""
    data = read_index(path)
    if data is None or data.get("sources") != source_hashes(modules):
        log.debug("model index %s is missing or out of date; importing the family modules", path)
        return None
    try:
        return [spec_from_dict(entry) for entry in data["models"]]
    except (KeyError, TypeError) as exc:
        log.debug("model index %s is unreadable (%s)", path, exc)
        return None


def measure_parameters(name: str) -> int | None:
    """Every parameter of ``name`` as built with its default head, on the meta device (no memory,
    no weights read); None when it cannot be built here (an optional extra not installed)."""
    import torch

    from dfine_bench.adapters.registry import create_model

    try:
        with torch.device("meta"):
            adapter = create_model(name, device="meta")
    except DfineBenchError as exc:
        log.debug("cannot count parameters of %s: %s", name, exc)
        return None
    return adapter.num_parameters()


def build_index() -> dict[str, Any]:
    """The index of the built-in models as the installed sources define them (builds each on meta)."""
    from dfine_bench.adapters import registry

    registry._load_builtins()
    builtin = sorted(n for n, m in registry.REGISTRY.entries.items() if m.origin == "builtin")
    models = []
    for name in builtin:
        spec = registry.REGISTRY.entries[name].spec
        count = spec.num_parameters if spec.num_parameters is not None else measure_parameters(name)
        models.append(spec_to_dict(dataclasses.replace(spec, num_parameters=count)))
    return {
        "generated_by": REGENERATE,
        "sources": source_hashes(registry._BUILTIN_MODULES),
        "models": models,
    }


def write_index(path: Path = INDEX_FILE) -> Path:
    path.write_text(json.dumps(build_index(), indent=1) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"wrote {write_index()}")
