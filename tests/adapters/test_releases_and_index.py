"""Weight release tags (timm-style ``dfine_s.obj2coco``) and the model index behind ``list models``.

The release is written by the weights loader from each spec's release data, never guessed from
names; the index stores every built-in spec with a measured parameter count so that listing
models builds nothing and imports no torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_dfine import SMALL, to_official

from dfine_bench.adapters import create_model, get_spec, registry
from dfine_bench.adapters.model_index import (
    REGENERATE,
    builtin_specs,
    measure_parameters,
    read_index,
    spec_to_dict,
)
from dfine_bench.adapters.spec import split_tag
from dfine_bench.errors import ConfigError, UnknownNameError


# -- release tags ----------------------------------------------------------------------------------
def test_tags_resolve_to_the_base_spec_and_its_release_sources() -> None:
    assert split_tag("dfine_s.obj2coco") == ("dfine_s", "obj2coco") and split_tag("dfine_s") == (
        "dfine_s",
        None,
    )
    spec = get_spec("dfine_s.obj2coco")
    assert spec.name == "dfine_s" and set(spec.releases) == {"coco", "obj2coco", "obj365"}
    assert spec.release_of("ustc-community/dfine-small-obj2coco") == "obj2coco"
    assert spec.release_of("/ckpt/dfine_s_obj365.pth") == "obj365"
    assert spec.release_of("someone/dfine_s_coco") is None  # another publisher: no release
    assert spec.release_of("/ckpt/dfine_s_coco_finetuned.pth") is None
    assert get_spec("rtdetr_r50").release_of("PekingU/rtdetr_r50vd_coco_o365") == "obj2coco"
    assert registry.list_releases("dfine_n") == ["dfine_n.coco", "dfine_n.obj2coco", "dfine_n.obj365"]
    with pytest.raises(UnknownNameError, match=r"unknown release of dfine_s 'obj2cocoo'.*obj2coco"):
        get_spec("dfine_s.obj2cocoo")


def test_tagged_name_picks_its_release_hub_id(hf_cache: Path) -> None:
    assert registry.release_weights("dfine_s") is None
    assert registry.release_weights("dfine_s.obj2coco") == "ustc-community/dfine_s_obj2coco"
    assert registry.release_weights("rtdetr_r50.obj2coco") == "PekingU/rtdetr_r50vd_coco_o365"
    with pytest.raises(ConfigError, match=r"names the obj2coco release of dfine_s.*weights='random-init'"):
        registry.release_weights("dfine_s.obj2coco", "random-init")
    with pytest.raises(ConfigError, match=r"no hub id.*deim_dfine_hgnetv2_n_coco_160e\.pth"):
        registry.release_weights("deim_dfine_n.coco")


def test_loader_records_the_release_of_a_hub_snapshot(
    tmp_path: Path, cache_snapshot: Callable[[str, Path], Path]
) -> None:
    source = create_model("dfine_n", seed=2, input_size=SMALL)
    source.model.save_pretrained(tmp_path / "saved")
    cache_snapshot("ustc-community/dfine-nano-obj2coco", tmp_path / "saved")
    adapter = create_model("dfine_n.obj2coco", input_size=SMALL)  # the cached id of that release
    assert (
        adapter.spec.name == "dfine_n" and adapter.weights.identifier == "ustc-community/dfine-nano-obj2coco"
    )
    facts = adapter.describe()
    assert facts["weights_release"] == "obj2coco" and facts["weights_tag"] == "dfine_n.obj2coco"
    # the same files from a local folder are no release: a folder may hold anything
    local = create_model("dfine_n", weights=str(tmp_path / "saved"), input_size=SMALL)
    assert local.weights.release is None and local.describe()["weights_tag"] is None
    assert create_model("dfine_n").describe()["weights_release"] is None  # random-init


def test_loader_records_the_release_of_an_official_file(
    tmp_path: Path, official_dfine_n_keys: dict[str, list[int]]
) -> None:
    official = to_official(create_model("dfine_n", seed=4).model.state_dict(), official_dfine_n_keys)
    for name, release in (("dfine_n_coco.pth", "coco"), ("my_run.pth", None)):
        torch.save({"model": official}, tmp_path / name)
        adapter = create_model("dfine_n", weights=str(tmp_path / name), input_size=SMALL)
        assert adapter.weights.source == "official" and adapter.weights.release == release


# -- the model index -------------------------------------------------------------------------------
def test_index_is_current_and_matches_the_registered_specs() -> None:
    specs = builtin_specs(registry._BUILTIN_MODULES)
    assert specs is not None, f"the model index is out of date: run `{REGENERATE}`"
    registry._load_builtins()
    indexed = {s.name: spec_to_dict(s) for s in specs}
    live = {n: spec_to_dict(m.spec) for n, m in registry.REGISTRY.entries.items() if m.origin == "builtin"}
    for entry in (*indexed.values(), *live.values()):
        entry.pop("num_parameters")
    assert indexed == {n: live[n] for n in indexed}, f"run `{REGENERATE}`"
    assert set(indexed) >= {"dfine_n", "dfine_x", "rtdetr_r18", "detr_r50"}


@pytest.mark.parametrize("name", ["dfine_n", "deimv2_hgnetv2_n", "rtdetr_r18"])
def test_stored_parameter_count_equals_a_real_build(name: str) -> None:
    stored = {m["name"]: m["num_parameters"] for m in read_index()["models"]}  # type: ignore[index]
    assert stored[name] is not None and stored[name] == measure_parameters(name)
    assert get_spec(name).num_parameters == stored[name]


def test_a_stale_index_is_not_used(tmp_path: Path) -> None:
    data = read_index()
    assert data is not None
    data["sources"]["dfine_bench.adapters.dfine"] = "0" * 64  # as if dfine.py changed since
    stale = tmp_path / "model_index.json"
    stale.write_text(json.dumps(data))
    assert builtin_specs(registry._BUILTIN_MODULES, stale) is None
    assert builtin_specs(registry._BUILTIN_MODULES, tmp_path / "absent.json") is None


# -- start-up cost ---------------------------------------------------------------------------------
NO_HEAVY = """
import sys
from dfine_bench.cli import main
try:
    rc = main({argv!r})
except SystemExit as exc:  # --help exits
    rc = exc.code
heavy = sorted(m for m in ("torch", "transformers", "matplotlib") if m in sys.modules)
print("RC", rc, "HEAVY", ",".join(heavy) or "none")
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["list", "models"], ["list", "models", "--family", "dfine"], ["list", "suites"]]
)
def test_help_and_listing_import_no_torch(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_HEAVY.format(argv=argv)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == "RC 0 HEAVY none", done.stdout[-2000:]
    if argv[:2] == ["list", "models"]:
        assert "dfine_n" in done.stdout and "3.78" in done.stdout  # the count, read from the spec
