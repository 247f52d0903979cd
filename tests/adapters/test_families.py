"""Every family on the one interface: build, preprocess, run, postprocess; parity with transformers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dfine_bench.adapters import Detections, create_model, list_models
from dfine_bench.adapters.catalog import models_table
from dfine_bench.adapters.hf_common import DetrPreprocessor
from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS, COCO80_NAMES, label_to_category
from dfine_bench.adapters.yolo import (
    LetterboxPreprocessor,
    letterbox_geometry,
    ultralytics_available,
    unletterbox,
)
from dfine_bench.errors import BackendUnavailable, CheckpointError, ConfigError, UnknownNameError

#: Small inputs keep CPU time low: D-FINE-N style models need >= 300 anchors at strides 16/32.
SMALL = {
    "dfine_n": (320, 320),
    "deim_dfine_n": (320, 320),
    "deimv2_hgnetv2_n": (320, 320),
    "dfine_fixture": (320, 320),
}
DETR_FAMILY = ("detr_r50", "deformable_detr", "conditional_detr", "dab_detr")
BUILTIN = [n for n in list_models() if not n.startswith("yolo")]


def _size(name: str) -> tuple[int, int]:
    if name in DETR_FAMILY:
        return (96, 160)  # (shortest edge, longest edge)
    return SMALL.get(name, (160, 160))


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN)
def test_every_adapter_runs_end_to_end(name: str, images: list[np.ndarray]) -> None:
    adapter = create_model(name, input_size=_size(name))
    assert adapter.spec.name == name and adapter.weights.is_random_init
    detections = adapter.predict(images)
    assert len(detections) == len(images)
    for det, image in zip(detections, images):
        assert isinstance(det, Detections)
        assert len(det) == adapter.spec.detections_per_image
        height, width = image.shape[:2]
        assert torch.isfinite(det.boxes).all()
        # boxes are in the original image's pixels: centred predictions stay near it
        centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
        assert float(centres[:, 0].max()) <= width * 1.5 and float(centres[:, 1].max()) <= height * 1.5
        assert set(det.category_ids.tolist()) <= set(adapter.label_to_category)
        assert bool((det.scores[:-1] >= det.scores[1:]).all()) or name == "detr_r50"
    groups = adapter.parameter_groups()
    assert groups["total"] == adapter.num_parameters()
    assert groups["backbone"] + groups["encoder"] + groups["decoder"] == groups["total"]


@pytest.mark.parametrize("name", ["dfine_n", "rtdetr_r18", "rtdetrv2_r18"])
def test_random_init_queries_do_not_tie(name: str) -> None:
    """Random-init activations must not vanish: tied scores make top-k query selection arbitrary
    (and different between PyTorch and ONNX Runtime), so outputs would carry no signal."""
    adapter = create_model(name, input_size=_size(name))
    with torch.inference_mode():
        logits = adapter.forward(adapter.example_input(1))["logits"][0]
    best = logits.amax(-1)
    assert best.unique().numel() > 0.9 * best.numel(), "most queries share one score: activations vanished"


def _parity(name: str, processor, images: list[np.ndarray], **kwargs) -> None:
    adapter = create_model(name, input_size=_size(name))
    batch = adapter.preprocess(images)
    with torch.inference_mode():
        raw = adapter.forward(batch.pixel_values, **batch.extras)
    ours = adapter.postprocess(raw, batch.original_sizes)
    theirs = processor.post_process_object_detection(
        SimpleNamespace(**raw), threshold=0.0, target_sizes=batch.original_sizes, **kwargs
    )
    for mine, ref in zip(ours, theirs):
        assert len(mine) == len(ref["scores"]) > 0
        torch.testing.assert_close(mine.scores, ref["scores"].float(), atol=1e-5, rtol=0)
        torch.testing.assert_close(mine.boxes, ref["boxes"].float(), atol=1e-5, rtol=0)
        assert torch.equal(mine.labels, ref["labels"])


@pytest.mark.parametrize("name", ["rtdetr_r18", "rtdetrv2_r18", "deimv2_hgnetv2_n"])
def test_focal_families_match_transformers_postprocess(name: str, images: list[np.ndarray]) -> None:
    from transformers import RTDetrImageProcessorPil

    _parity(name, RTDetrImageProcessorPil(), images)


@pytest.mark.parametrize(
    ("name", "top_k"), [("deformable_detr", 100), ("conditional_detr", 100), ("dab_detr", 300)]
)
def test_sigmoid_detr_family_matches_transformers_postprocess(
    name: str, top_k: int, images: list[np.ndarray]
) -> None:
    from transformers import ConditionalDetrImageProcessorPil, DeformableDetrImageProcessorPil

    processor = (
        DeformableDetrImageProcessorPil() if name == "deformable_detr" else ConditionalDetrImageProcessorPil()
    )
    _parity(name, processor, images, top_k=top_k)


def test_detr_matches_transformers_postprocess(images: list[np.ndarray]) -> None:
    from transformers import DetrImageProcessorPil

    _parity("detr_r50", DetrImageProcessorPil(), images)


def test_detr_preprocessing_follows_transformers(images: list[np.ndarray]) -> None:
    from transformers import DetrImageProcessorPil

    pre = DetrPreprocessor()
    pixel_values, extras = pre.collate([pre(im) for im in images])
    reference = DetrImageProcessorPil()(images=list(images), return_tensors="pt")
    assert pixel_values.shape == reference["pixel_values"].shape
    assert torch.equal(extras["pixel_mask"], reference["pixel_mask"].long())
    # same rule; the resampling libraries differ slightly at the pixel level
    assert float((pixel_values - reference["pixel_values"]).abs().mean()) < 0.05


def test_detr_family_refuses_timm_checkpoints(tmp_path: Path) -> None:
    adapter = create_model("detr_r50", input_size=(96, 160))
    adapter.model.save_pretrained(tmp_path / "detr")
    config = (tmp_path / "detr" / "config.json").read_text()
    (tmp_path / "detr" / "config.json").write_text(config.replace("{", '{"use_timm_backbone": true,', 1))
    with pytest.raises(CheckpointError, match="no_timm"):
        create_model("detr_r50", weights=str(tmp_path / "detr"))


def test_rtdetr_local_round_trip(tmp_path: Path) -> None:
    source = create_model("rtdetr_r18", seed=2, input_size=(160, 160))
    source.model.save_pretrained(tmp_path / "r18")
    loaded = create_model("rtdetr_r18", weights=str(tmp_path / "r18"), input_size=(160, 160))
    x = source.example_input(1)
    with torch.inference_mode():
        assert torch.equal(source.forward(x)["logits"], loaded.forward(x)["logits"])
    with pytest.raises(CheckpointError, match=r"missing tensors \(model\.backbone\.model\.encoder\.stages"):
        create_model("rtdetr_r34", weights=str(tmp_path / "r18"))


def test_fdr_and_go_lsd_flags() -> None:
    table = models_table(compute_params=False).set_index("name")
    assert (
        table.loc["dfine_x", "fdr"]
        and table.loc["dfine_x", "fdr_bins"] == 32
        and table.loc["dfine_x", "go_lsd"]
    )
    assert not table.loc["rtdetr_r50", "fdr"] and not table.loc["rtdetr_r50", "go_lsd"]
    assert not table.loc["detr_r50", "fdr"]
    assert table.loc["deim_dfine_l", "fdr"]


def test_models_table_lists_every_model_with_params() -> None:
    table = models_table()
    assert list(table.columns) == [
        "name",
        "family",
        "params_m",
        "input_size",
        "fdr",
        "fdr_bins",
        "go_lsd",
        "weights",
    ]
    assert set(table["name"]) == set(list_models())
    rows = table.set_index("name")
    assert rows.loc["dfine_l", "params_m"] == 31.24
    assert rows.loc["rtdetr_r18", "params_m"] == pytest.approx(20.17, abs=0.01)
    assert "ustc-community/dfine_l_coco" in rows.loc["dfine_l", "weights"]
    assert rows.loc["dfine_l", "input_size"] == "640x640"
    if not ultralytics_available():
        assert pd_isna(rows.loc["yolo11n", "params_m"])


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_registered_names() -> None:
    names = set(list_models())
    expected = {f"dfine_{s}" for s in "nsmlx"} | {f"deim_dfine_{s}" for s in "nsmlx"}
    expected |= {f"rtdetr{v}_r{d}" for v in ("", "v2") for d in (18, 34, 50, 101)}
    expected |= {"deformable_detr", "dab_detr", "conditional_detr", "detr_r50", "yolov8n", "yolo11x"}
    assert expected <= names
    assert any(n.startswith("deimv2_") for n in names)
    with pytest.raises(UnknownNameError, match="dfine_n"):
        create_model("dfine_nn")


def test_coco80_labels() -> None:
    assert len(COCO80_CATEGORY_IDS) == len(COCO80_NAMES) == 80
    assert COCO80_CATEGORY_IDS[:12] == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)
    assert COCO80_CATEGORY_IDS[-1] == 90 and 12 not in COCO80_CATEGORY_IDS
    assert COCO80_NAMES[0] == "person" and COCO80_NAMES[-1] == "toothbrush"
    with pytest.raises(ConfigError, match="80 classes"):
        label_to_category("coco80", 91)


# -- YOLO (optional extra) -------------------------------------------------------------------------
def test_yolo_without_ultralytics_names_the_extra() -> None:
    if ultralytics_available():
        pytest.skip("ultralytics is installed here; the missing-extra path cannot be exercised")
    with pytest.raises(BackendUnavailable, match=r"dfine-bench\[yolo\]"):
        create_model("yolov8n")


@pytest.mark.skipif(not ultralytics_available(), reason="ultralytics (extra 'yolo') is not installed")
def test_yolo_runs_end_to_end(images: list[np.ndarray]) -> None:
    adapter = create_model("yolov8n", input_size=(160, 160))
    detections = adapter.predict(images)
    assert len(detections) == len(images)


def test_letterbox_geometry_round_trips() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[40:60, 50:150] = 255  # a white bar
    tensor = LetterboxPreprocessor((64, 64))(image)
    assert tensor.shape == (3, 64, 64)
    scale, left, top = letterbox_geometry(100, 200, (64, 64))
    assert scale == pytest.approx(0.32) and left == 0 and top == 16
    assert float(tensor[0, 0, 0]) == pytest.approx(114 / 255)  # grey padding above the image
    # the bar on the letterboxed input maps back to where it is in the original image
    box = torch.tensor([[50 * scale + left, 40 * scale + top, 150 * scale + left, 60 * scale + top]])
    torch.testing.assert_close(
        unletterbox(box, (100, 200), (64, 64)), torch.tensor([[50.0, 40.0, 150.0, 60.0]])
    )
