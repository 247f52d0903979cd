"""One definition of each default: the Hydra schema and the typed settings name the same fields,
the settings take each default from the schema, and ``paper_t4`` is stated once (``PAPER_T4``).

Issue 19: ``ProfilingConfig`` and ``ProfileSettings`` declared the same 28 fields and defaults
twice with nothing to keep them in sync; ``paper_t4`` was written as data, YAML, code and prose.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from pathlib import Path

import pytest
import yaml

from dfine_bench.config import schema
from dfine_bench.config.settings import DatasetSettings, EvaluationSettings, ProfileSettings, WeightsSettings
from dfine_bench.errors import ConfigError
from dfine_bench.records.protocols import PAPER_T4
from dfine_bench.reporting.labels import PAPER_PROTOCOL_TEXT

ROOT = Path(__file__).resolve().parents[2]

#: settings class -> (schema class, settings fields that are not the group's: they come from elsewhere)
PAIRS = [
    (ProfileSettings, schema.ProfilingConfig, {"seed"}),  # the run's seed
    (EvaluationSettings, schema.EvaluationConfig, set()),
    (DatasetSettings, schema.DatasetConfig, set()),
    (WeightsSettings, schema.WeightsConfig, {"num_classes", "input_size"}),  # model.* / suite.input_size
]


def _plain(value: object) -> object:
    """A default as plain data: enum members as values, lists as tuples, groups as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    value = value.value if isinstance(value, Enum) else value
    return tuple(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize(("settings", "config", "own"), PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_settings_and_schema_have_the_same_fields_and_defaults(settings, config, own) -> None:
    s_fields = {f.name for f in dataclasses.fields(settings)}
    c_fields = {f.name for f in dataclasses.fields(config)}
    assert s_fields - own == c_fields, "a field added to one must be added to the other"
    defaults, built = config(), settings()
    for name in sorted(c_fields):
        assert _plain(getattr(built, name)) == _plain(getattr(defaults, name)), name


def test_settings_from_a_config_are_plain_values_and_checked() -> None:
    ev = EvaluationSettings.from_config(schema.EvaluationConfig(engine=schema.Engine.pycocotools))
    assert ev.engine == "pycocotools" and type(ev.engine) is str and ev.evaluators == ("coco",)
    ds = DatasetSettings.from_config(schema.DatasetConfig(kind=schema.DatasetKind.generated))
    assert ds.kind == "generated" and ds.image_size == (480, 640)
    with pytest.raises(ConfigError, match=r"^dataset\.image_size=.*: must be >= 32$"):
        DatasetSettings(image_size=(8, 8))
    with pytest.raises(ConfigError, match=r"^evaluation\.max_failed_fraction=2: must be between 0 and 1$"):
        EvaluationSettings(max_failed_fraction=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.batch_size = 2  # type: ignore[misc]


def test_the_paper_protocol_yaml_is_the_code_definition() -> None:
    cfg = yaml.safe_load((ROOT / "suites" / "protocol" / "paper_t4.yaml").read_text())
    p = PAPER_T4
    assert cfg["protocol"]["name"] == p.name
    assert cfg["protocol"]["reference_device"] == p.reference_device
    assert (cfg["backend"]["name"], cfg["backend"]["dtype"]) == (p.backend, p.dtype)
    assert schema.Timed[cfg["profiling"]["timed"]].value == p.timed
    assert cfg["profiling"]["input"] == p.input_kind
    assert cfg["profiling"]["batch_sizes"] == [p.batch_size]
    assert tuple(cfg["profiling"]["flops_input_size"]) == p.input_size


def test_the_paper_protocol_prose_states_the_code_definition() -> None:
    h, w = PAPER_T4.input_size
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"`protocol=paper_t4` is the paper's: ([^\n]+)", readme)
    assert line, "the README's paragraph on protocol=paper_t4 is gone"
    stated = line.group(1)
    assert f"batch {PAPER_T4.batch_size}" in stated and f"{h}x{w}" in stated
    assert PAPER_T4.dtype.upper() in stated and "TensorRT" in stated
    for text in (PAPER_PROTOCOL_TEXT, PAPER_T4.description):
        assert f"{h}x{w}" in text and f"batch size {PAPER_T4.batch_size}" in text
        assert f"{PAPER_T4.reference_device}" in text and PAPER_T4.dtype.upper() in text
