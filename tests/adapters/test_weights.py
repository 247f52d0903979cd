"""Weights arguments, safe checkpoint reading and the strict loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dfine_bench.adapters.spec import WeightsRequest
from dfine_bench.adapters.weights import (
    inspect_pretrained_dir,
    load_state_dict_strict,
    parse_weights,
    read_checkpoint_file,
    sha256_files,
    weights_request,
)
from dfine_bench.errors import CheckpointError, ConfigError


def test_weights_request_maps_sources_to_the_request_create_model_takes(tmp_path: Path) -> None:
    ckpt = tmp_path / "dfine_n_coco.pth"
    ckpt.write_bytes(b"x")
    hub = "ustc-community/dfine_n_coco"
    assert weights_request("random-init", None) == WeightsRequest("random-init")
    assert weights_request("auto", None) == WeightsRequest("auto")
    assert weights_request("hub", hub) == WeightsRequest("hub", hub)
    assert weights_request("local", str(tmp_path)) == WeightsRequest("local", str(tmp_path))
    assert weights_request("official", str(ckpt)) == WeightsRequest("file", str(ckpt))
    # the request is the parse: it is never written out as a string and parsed again
    for request in (weights_request("hub", hub), weights_request("official", str(ckpt))):
        assert parse_weights(request) is request


@pytest.mark.parametrize(
    ("source", "path", "needle"),
    [
        ("official", None, "needs weights.path"),
        ("hub", None, "needs weights.path"),
        ("hub", "not a hub id", "owner/name"),
        ("local", "/nonexistent/dir", "no such directory"),
        ("official", "/nonexistent/x.pth", "no such checkpoint file"),
        ("ftp", "x", "weights.source"),
    ],
)
def test_weights_request_errors(source: str, path: str | None, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        weights_request(source, path)


def test_parse_weights_kinds(tmp_path: Path) -> None:
    file = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(1)}, str(file))
    assert parse_weights("random-init").kind == "random-init"
    assert parse_weights("AUTO").kind == "auto"
    assert parse_weights(str(tmp_path)).kind == "local"
    assert parse_weights(str(file)).kind == "file"
    assert parse_weights("ustc-community/dfine-xlarge-coco").kind == "hub"
    with pytest.raises(CheckpointError, match="no such file"):
        parse_weights(str(tmp_path / "missing.pth"))


def test_truncated_files_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.randn(64, 64)}, str(good))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        read_checkpoint_file(bad)
    pth = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.randn(64, 64)}}, pth)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(pth.read_bytes()[: len(pth.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth"):
        read_checkpoint_file(cut)


class _Payload:
    """Stands for arbitrary pickled objects: weights_only loading must refuse them."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": _Payload()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        read_checkpoint_file(path)


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(b"dfine" * 1000)
    assert sha256_files([path]) == hashlib.sha256(b"dfine" * 1000).hexdigest()


class _Tiny(torch.nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.a = torch.nn.Linear(width, width)
        self.b = torch.nn.Linear(width, 2)
        self.tied = self.b  # the same module under a second name, like transformers' heads


def test_strict_loader_reports_every_problem() -> None:
    model = _Tiny()
    state = {k: v.clone() for k, v in _Tiny(width=6).state_dict().items() if not k.startswith("tied")}
    state.pop("a.bias")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(model, state, "ckpt.safetensors")
    message = str(info.value)
    assert "ckpt.safetensors" in message
    assert "a.weight: checkpoint (6, 6) vs model (4, 4)" in message
    assert "missing tensors (a.bias)" in message
    assert "unexpected tensors (extra.weight)" in message


def test_strict_loader_fills_tied_names() -> None:
    source = _Tiny()
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("tied")}
    target = _Tiny()
    load_state_dict_strict(target, state, "x")
    assert torch.equal(target.tied.weight, source.b.weight)
    assert torch.equal(target.a.weight, source.a.weight)


def test_inspect_pretrained_dir_requires_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="has no weights"):
        inspect_pretrained_dir(tmp_path)
