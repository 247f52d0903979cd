"""The official-layout export holds every key of the official D-FINE model (issue 22.11).

The official ``train.py --test-only -r``, ``torch_inf.py`` and ``export_onnx.py`` load a checkpoint's
``model`` entry with a strict ``load_state_dict``: a missing key (``decoder.up``,
``decoder.reg_scale``, the buffers ``decoder.anchors`` / ``decoder.valid_mask``, a BatchNorm's
``num_batches_tracked``) or an unexpected one is refused. The reference is the official D-FINE-N
model's ``state_dict`` key list with shapes, stored once in ``data/dfine_n_official_keys.json``
(never fetched at test time): strict loading succeeds exactly when names and shapes agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dfine_bench.adapters import create_model
from dfine_bench.adapters.official_export import (
    official_anchors,
    official_state_dict,
    save_official_checkpoint,
    to_official_state_dict,
)
from dfine_bench.errors import CheckpointError

#: The official DFINETransformer's default ``eps`` (valid-anchor margin) and anchor grid size.
OFFICIAL_EPS, GRID_SIZE = 1e-2, 0.05
#: Keys whose shape follows the evaluation size (``eval_spatial_size``), not the architecture.
SIZE_DEPENDENT = {"decoder.anchors", "decoder.valid_mask"}


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def _anchor_count(size: tuple[int, int], strides: list[int]) -> int:
    return sum(int(size[0] / s) * int(size[1] / s) for s in strides)


def test_the_export_holds_every_key_of_the_official_model(
    official_dfine_n_keys: dict[str, list[int]],
) -> None:
    """D-FINE-N at 640x640, the official config's ``eval_spatial_size``: names and shapes equal."""
    exported = official_state_dict(create_model("dfine_n", seed=3))
    missing = sorted(set(official_dfine_n_keys) - set(exported))
    unexpected = sorted(set(exported) - set(official_dfine_n_keys))
    assert not missing and not unexpected, (missing[:10], unexpected[:10])
    assert _shapes(exported) == official_dfine_n_keys
    # up / reg_scale are one parameter each, held by the decoder and its layer stack
    for name in ("up", "reg_scale"):
        assert torch.equal(exported[f"decoder.{name}"], exported[f"decoder.decoder.{name}"])
    assert exported["decoder.up"].item() == 0.5 and exported["decoder.reg_scale"].item() == 4.0
    assert exported["decoder.valid_mask"].dtype == torch.bool
    assert exported["decoder.anchors"].dtype == torch.float32


def test_the_exported_fixture_holds_the_official_key_list(
    official_dfine_n_keys: dict[str, list[int]],
) -> None:
    """The fixture (D-FINE-N trained at 320x320): the official key list; the anchors follow 320x320
    (an official config with ``eval_spatial_size: [320, 320]`` loads it strictly)."""
    fixture = create_model("dfine_fixture", weights="fixture")
    exported = official_state_dict(fixture)
    assert set(exported) == set(official_dfine_n_keys)
    shapes = _shapes(exported)
    assert {k: v for k, v in shapes.items() if k not in SIZE_DEPENDENT} == {
        k: v for k, v in official_dfine_n_keys.items() if k not in SIZE_DEPENDENT
    }
    count = _anchor_count((320, 320), [16, 32])
    assert shapes["decoder.anchors"] == [1, count, 4] and shapes["decoder.valid_mask"] == [1, count, 1]


def test_anchors_are_computed_as_the_official_decoder_computes_them() -> None:
    """Cell centres, width/height 0.05 * 2**level, logit; anchors within eps of the border are
    invalid (mask False, value +inf). Checked against transformers' own anchor generator and by hand."""
    anchors, valid = official_anchors((320, 320), [16, 32], num_levels=2)
    ours = create_model("dfine_n", input_size=(320, 320)).model.model
    theirs, their_valid = ours.generate_anchors(spatial_shapes=((20, 20), (10, 10)), grid_size=GRID_SIZE)
    torch.testing.assert_close(anchors, theirs, rtol=0, atol=0)
    assert torch.equal(valid, their_valid.bool())
    # the first cell of level 0: centre (0.5/20, 0.5/20), size 0.05 -> logit of each
    first = [0.5 / 20, 0.5 / 20, GRID_SIZE, GRID_SIZE]
    assert anchors[0, 0].tolist() == pytest.approx([math.log(v / (1 - v)) for v in first])
    # a third level (the official decoder doubles the last stride) at 640x640: 80^2 + 40^2 + 20^2
    big, big_valid = official_anchors((640, 640), [8, 16, 32], num_levels=3)
    assert big.shape == (1, 8400, 4)
    sigmoid = torch.sigmoid(big[big_valid.squeeze(-1)])
    assert ((sigmoid > OFFICIAL_EPS) & (sigmoid < 1 - OFFICIAL_EPS)).all()
    assert torch.isinf(big[~big_valid.squeeze(-1)]).all() and (~big_valid).any()


def test_the_export_round_trips_through_weights_official(tmp_path: Path) -> None:
    """The fixture's export, saved as the official training code saves it and loaded back through
    ``weights=official``, gives bit-identical tensors; the importer accepts the extra keys."""
    fixture = create_model("dfine_fixture", weights="fixture")
    path = save_official_checkpoint(fixture, tmp_path / "dfine_fixture_official.pth")
    assert set(torch.load(path, weights_only=True)) == {"model"}  # as the official solver saves it
    written = path.read_bytes()
    with pytest.raises(CheckpointError, match="already exists"):  # never overwrites
        save_official_checkpoint(fixture, path)
    assert path.read_bytes() == written
    loaded = create_model("dfine_fixture", weights=str(path))
    assert loaded.weights.source == "official"
    before, after = fixture.model.state_dict(), loaded.model.state_dict()
    assert set(before) == set(after)
    differ = [k for k in before if not torch.equal(before[k], after[k])]
    assert not differ, differ[:10]


def test_an_export_without_the_evaluation_size_is_refused() -> None:
    state = create_model("dfine_n").model.state_dict()
    with pytest.raises(CheckpointError, match="eval_spatial_size"):
        to_official_state_dict(state, eval_spatial_size=(0, 640), feat_strides=[16, 32])
