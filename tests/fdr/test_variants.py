"""The FDR variants build, run, train, export and load like every other adapter; strict loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dfine_bench.adapters import create_model, get_spec, list_models
from dfine_bench.adapters.fdr_variants import FdrUnsupportedError, variant_of
from dfine_bench.errors import CheckpointError
from dfine_bench.fdr.head import FdrSettings, parameter_delta

SIZE = (128, 128)
DETR_SIZE = (96, 128)  # (shortest edge, longest edge)


def _labels() -> list[dict[str, torch.Tensor]]:
    return [
        {
            "class_labels": torch.tensor([0, 2]),
            "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.25, 0.3, 0.2, 0.2]]),
        },
        {"class_labels": torch.tensor([1]), "boxes": torch.tensor([[0.6, 0.4, 0.4, 0.3]])},
    ]


@pytest.fixture
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((120, 160), (90, 90))]


def test_variants_are_listed_with_truthful_flags() -> None:
    from dfine_bench.adapters.catalog import models_table

    table = models_table(compute_params=False).set_index("name")  # what `dfine-bench list models` shows
    assert table.loc["rtdetr_r18+fdr", "fdr"] and table.loc["rtdetr_r18+fdr", "go_lsd"]
    assert (
        table.loc["deformable_detr+fdr", "fdr_bins"] == 32 and not table.loc["deformable_detr_refine", "fdr"]
    )
    names = set(list_models())
    for variant, baseline in (
        ("rtdetr_r18+fdr", "rtdetr_r18"),
        ("rtdetr_r50+fdr", "rtdetr_r50"),
        ("deformable_detr+fdr", "deformable_detr_refine"),
    ):
        assert {variant, baseline} <= names
        spec, base = get_spec(variant), get_spec(baseline)
        assert spec.fdr and spec.fdr_bins == 32 and spec.go_lsd
        assert not base.fdr and not base.go_lsd and base.fdr_bins is None
        assert spec.extra["baseline"] == baseline and variant_of(baseline) == variant
        assert (spec.input_size, spec.num_classes, spec.num_queries) == (
            base.input_size,
            base.num_classes,
            base.num_queries,
        )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("yolov8n", "yolo family"),
        ("dfine_s", "already has an FDR decoder"),
        ("dab_detr", "DabDetrDecoder"),
    ],
)
def test_unsupported_baselines_name_the_model(name: str, reason: str) -> None:
    with pytest.raises(FdrUnsupportedError, match=f"FDR cannot attach to model '{name}'.*{reason}"):
        create_model(f"{name}+fdr")
    with pytest.raises(FdrUnsupportedError, match=name):
        variant_of(name)


def test_plain_deformable_detr_points_to_the_refining_baseline() -> None:
    # deformable_detr+fdr exists, but its baseline is the refining model, not plain deformable_detr
    with pytest.raises(FdrUnsupportedError, match=r"without box refinement.*deformable_detr_refine"):
        variant_of("deformable_detr")


def test_rtdetr_variant_runs_trains_and_counts(images: list[np.ndarray]) -> None:
    adapter = create_model("rtdetr_r18+fdr", input_size=SIZE, num_classes=3)
    baseline = create_model("rtdetr_r18", input_size=SIZE, num_classes=3)
    assert adapter.weights.is_random_init and adapter.describe()["fdr"] and not adapter.describe()["go_lsd"]
    detections = adapter.predict(images)
    assert [len(d) for d in detections] == [300, 300]
    assert all(torch.isfinite(d.boxes).all() for d in detections)
    # only the box head differs: backbone and encoder identical in size, the delta is the head's
    groups, base_groups = adapter.parameter_groups(), baseline.parameter_groups()
    assert groups["backbone"] == base_groups["backbone"] and groups["encoder"] == base_groups["encoder"]
    delta = parameter_delta(256, 3, FdrSettings())
    assert adapter.num_parameters() - baseline.num_parameters() == sum(delta.values()) == 235_527
    # it computes its own loss from labels, GO-LSD terms included, and trains
    model = adapter.model.train()
    out = model(pixel_values=adapter.example_input(2, SIZE), labels=_labels())
    assert {"loss_vfl", "loss_bbox", "loss_giou", "loss_fgl", "loss_ddf"} <= set(out.loss_dict)
    assert any(k.startswith("loss_ddf_dn_") for k in out.loss_dict)  # denoising queries distil too
    out.loss.backward()
    head = model.model.decoder.fdr
    assert head.bbox_embed[0].layers[0].weight.grad is not None
    assert float(head.bbox_embed[-1].layers[-1].weight.grad.abs().sum()) > 0


def test_fresh_variant_starts_like_dfine_and_its_baseline() -> None:
    """The class heads get the baseline's focal prior bias and the FDR head D-FINE's zero init
    (transformers skips both for a model class defined outside it unless the decoder applies them)."""
    variant = create_model("rtdetr_r18+fdr", input_size=SIZE, num_classes=3).model.model.decoder
    baseline = create_model("rtdetr_r18", input_size=SIZE, num_classes=3).model.model.decoder
    for ours, theirs in zip(variant.class_embed, baseline.class_embed):
        torch.testing.assert_close(ours.bias, theirs.bias)
        assert float(ours.bias[0].detach()) < -1  # -log((1 - p) / p) with p = 1 / (classes + 1)
    for layer in variant.fdr.zero_init_layers():
        assert float(layer.weight.abs().max()) == 0.0 and float(layer.bias.abs().max()) == 0.0
    assert float(variant.fdr.up) == 0.5 and float(variant.fdr.reg_scale) == 4.0


def test_go_lsd_off_keeps_the_baselines_loss_terms() -> None:
    adapter = create_model("rtdetr_r18+fdr", input_size=SIZE, num_classes=3, go_lsd=False)
    assert not adapter.spec.go_lsd and adapter.model.config.go_lsd is False
    out = adapter.model.train()(pixel_values=adapter.example_input(2, SIZE), labels=_labels())
    assert not any("fgl" in k or "ddf" in k for k in out.loss_dict)


def test_local_folder_round_trip_and_strict_loading(tmp_path: Path) -> None:
    source = create_model("rtdetr_r18+fdr", seed=3, input_size=SIZE, num_classes=3)
    with torch.no_grad():  # trained-looking distributions, so a wrong load would show
        for p in source.model.model.decoder.fdr.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    source.model.save_pretrained(str(tmp_path / "fdr"))
    loaded = create_model("rtdetr_r18+fdr", weights=str(tmp_path / "fdr"), input_size=SIZE)
    assert loaded.weights.source == "local" and loaded.spec.num_classes == 3
    x = source.example_input(1, SIZE)
    with torch.no_grad():
        a, b = source.forward(x), loaded.forward(x)
    torch.testing.assert_close(a["pred_boxes"], b["pred_boxes"])
    torch.testing.assert_close(a["logits"], b["logits"])

    create_model("rtdetr_r18", seed=3, input_size=SIZE, num_classes=3).model.save_pretrained(
        str(tmp_path / "base")
    )
    with pytest.raises(CheckpointError, match=r"missing tensors \(model\.decoder\.fdr\..*unexpected tensors"):
        create_model("rtdetr_r18+fdr", weights=str(tmp_path / "base"), input_size=SIZE)
    with pytest.raises(CheckpointError, match=r"missing tensors \(model\.decoder\.bbox_embed\..*unexpected"):
        create_model("rtdetr_r18", weights=str(tmp_path / "fdr"), input_size=SIZE)


@pytest.mark.slow
def test_rtdetr_variant_exports_to_onnx(tmp_path: Path) -> None:
    import onnxruntime as ort

    from dfine_bench.backends.export.onnx import export_onnx

    adapter = create_model("rtdetr_r18+fdr", input_size=SIZE, num_classes=3)
    x = adapter.example_input(1, SIZE)
    path, _ = export_onnx(
        adapter.export_module(), x, tmp_path / "m.onnx", opset=17, output_names=adapter.output_names
    )
    got = ort.InferenceSession(str(path)).run(None, {"pixel_values": x.numpy()})
    with torch.no_grad():
        eager = adapter.forward(x)
    for name, value in zip(adapter.output_names, got):
        np.testing.assert_allclose(value, eager[name].numpy(), atol=1e-4)


@pytest.mark.slow
def test_deformable_variant_runs_and_trains(images: list[np.ndarray]) -> None:
    adapter = create_model("deformable_detr+fdr", input_size=DETR_SIZE)
    baseline = create_model("deformable_detr_refine", input_size=DETR_SIZE)
    assert adapter.num_parameters() - baseline.num_parameters() == sum(
        parameter_delta(256, 6, FdrSettings()).values()
    )
    detections = adapter.predict(images)
    assert [len(d) for d in detections] == [100, 100]
    assert all(torch.isfinite(d.boxes).all() for d in detections)
    batch = adapter.preprocess(images)
    out = adapter.model.train()(pixel_values=batch.pixel_values, labels=_labels(), **batch.extras)
    assert {"loss_ce", "loss_bbox", "loss_giou", "loss_fgl", "loss_ddf"} <= set(out.loss_dict)
    assert torch.isfinite(out.loss)
    out.loss.backward()


@pytest.mark.slow
def test_rtdetr_r50_variant_builds() -> None:
    adapter = create_model("rtdetr_r50+fdr", input_size=SIZE)
    baseline = create_model("rtdetr_r50", input_size=SIZE)
    assert adapter.num_parameters() - baseline.num_parameters() == sum(
        parameter_delta(256, 6, FdrSettings()).values()
    )
    with torch.no_grad():
        out = adapter.forward(adapter.example_input(1, SIZE))
    assert out["pred_boxes"].shape == (1, 300, 4)


def test_bad_options_name_the_field() -> None:
    from dfine_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config_overrides\.backbone_config\.no_such_field"):
        create_model("rtdetr_r18+fdr", config_overrides={"backbone_config.no_such_field": 1})
    with pytest.raises(ConfigError, match=r"fdr\.bins"):
        create_model("rtdetr_r18+fdr", fdr_bins=7)
