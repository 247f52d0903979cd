"""How a precision cell's non-finite outputs are evaluated, and which modules a fix keeps."""

from __future__ import annotations

from typing import Any

import torch

from dfine_bench.evaluation.inference_backend import finite_outputs
from dfine_bench.evaluation.precision_cells import counterparts


def test_non_finite_outputs_become_no_detection_and_are_counted() -> None:
    logits = torch.zeros(3, 5, 2)
    boxes = torch.full((3, 5, 4), 0.5)
    logits[1, 2, 0] = float("nan")
    boxes[2, 0, 1] = float("inf")
    info: dict[str, Any] = {}
    out_logits, out_boxes = finite_outputs((logits, boxes), ("logits", "pred_boxes"), info)
    assert info["nonfinite_images"] == 2  # images 1 and 2; image 0 untouched
    assert bool(torch.isfinite(out_logits).all()) and bool(torch.isfinite(out_boxes).all())
    assert float(torch.sigmoid(out_logits[1, 2, 0])) < 1e-6  # a NaN logit scores ~0: no detection
    assert torch.equal(out_logits[0], logits[0]) and torch.equal(out_boxes[0], boxes[0])
    clean: dict[str, Any] = {}
    assert finite_outputs((logits[:1], boxes[:1]), ("logits", "pred_boxes"), clean)[0] is not None
    assert "nonfinite_images" not in clean


def test_a_fix_keeps_the_diagnosed_module_and_its_counterparts_in_the_other_layers() -> None:
    assert (
        counterparts("inner.model.decoder.layers.0.encoder_attn")
        == "inner.model.decoder.layers.*.encoder_attn"
    )
    assert (
        counterparts("inner.model.backbone.model.embedder.stem1")
        == "inner.model.backbone.model.embedder.stem1"
    )
