"""D-FINE: architecture vs the official one, weights sources, official checkpoints, parity."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dfine_bench.adapters import create_model
from dfine_bench.adapters.catalog import count_parameters, dfine_params_vs_paper
from dfine_bench.adapters.labels import COCO80_CATEGORY_IDS
from dfine_bench.errors import CheckpointError

#: Smallest input with at least 300 anchors for D-FINE-N (strides 16 and 32: 20x20 + 10x10).
SMALL = (320, 320)

#: Official parameter counts of the Objects365 heads (random-init official model, 366 classes).
OFFICIAL_OBJ365 = {"n": 3_966_877, "s": 10_689_101, "m": 20_030_790, "l": 31_831_882, "x": 63_209_290}


def test_parameter_counts_equal_the_official_implementation() -> None:
    table = dfine_params_vs_paper()
    print("\n" + table.to_string(index=False))  # the report: ours vs official vs paper
    assert (table["diff_pct"].abs() <= 0.5).all()
    # measured against the official model, the layout is not just close but identical
    assert (table["params"] == table["official_params"]).all()
    assert list(table["paper_params_m"]) == [4, 10, 19, 31, 62]
    assert (table["params"] / 1e6).round().astype(int).tolist() == [4, 10, 20, 31, 63]


@pytest.mark.parametrize("size", ["n", "s", "m", "l", "x"])
def test_objects365_heads_match_official(size: str) -> None:
    with torch.device("meta"):
        adapter = create_model(f"dfine_{size}", num_classes=366, device="meta")
    assert adapter.num_parameters() == OFFICIAL_OBJ365[size]
    assert adapter.spec.label_set == "obj365"
    assert adapter.label_to_category == list(range(366))


def test_preprocess_is_bilinear_resize_to_unit_range(images: list[np.ndarray]) -> None:
    adapter = create_model("dfine_n")
    batch = adapter.preprocess(images)
    assert batch.pixel_values.shape == (3, 3, 640, 640)
    assert batch.original_sizes == [(96, 160), (150, 100), (64, 64)]
    expected = np.asarray(Image.fromarray(images[0]).resize((640, 640), Image.BILINEAR), np.float32) / 255
    assert torch.allclose(batch.pixel_values[0], torch.from_numpy(expected).permute(2, 0, 1))
    assert float(batch.pixel_values.min()) >= 0.0 and float(batch.pixel_values.max()) <= 1.0


def test_postprocess_matches_transformers(images: list[np.ndarray]) -> None:
    from transformers import RTDetrImageProcessorPil

    adapter = create_model("dfine_n", input_size=SMALL)
    batch = adapter.preprocess(images)
    with torch.inference_mode():
        raw = adapter.forward(batch.pixel_values)
    ours = adapter.postprocess(raw, batch.original_sizes)
    theirs = RTDetrImageProcessorPil().post_process_object_detection(
        SimpleNamespace(**raw), threshold=0.0, target_sizes=batch.original_sizes
    )
    for mine, ref in zip(ours, theirs):
        assert len(mine) == 300 == len(ref["scores"])
        torch.testing.assert_close(mine.scores, ref["scores"], atol=1e-5, rtol=0)
        torch.testing.assert_close(mine.boxes, ref["boxes"], atol=1e-5, rtol=0)
        assert torch.equal(mine.labels, ref["labels"])
        assert mine.category_ids.tolist() == [COCO80_CATEGORY_IDS[i] for i in mine.labels.tolist()]
    # random-init outputs must not be degenerate (all queries tied) or parity would prove little
    assert ours[0].scores.unique().numel() > 250


def test_random_init_is_seeded_and_labelled() -> None:
    a = create_model("dfine_n", seed=3)
    b = create_model("dfine_n", seed=3)
    c = create_model("dfine_n", seed=4)
    pa, pb, pc = (next(iter(m.model.parameters())) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert a.weights.is_random_init and a.weights.seed == 3
    facts = a.describe()
    assert facts["random_init"] is True and facts["go_lsd"] is False  # no GO-LSD claim for random weights
    assert facts["weights_label"] == "random-init (seed 3)"


def _outputs(adapter, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return dict(adapter.forward(x))


def test_local_directory_round_trip(tmp_path: Path) -> None:
    source = create_model("dfine_n", seed=1, input_size=SMALL)
    source.model.save_pretrained(tmp_path / "dfine_n")
    loaded = create_model("dfine_n", weights=str(tmp_path / "dfine_n"), input_size=SMALL)
    x = source.example_input(1, SMALL)
    for key, value in _outputs(source, x).items():
        assert torch.equal(value, _outputs(loaded, x)[key])
    assert loaded.weights.source == "local"
    assert loaded.weights.sha256 is not None and len(loaded.weights.sha256) == 64
    assert not loaded.describe()["random_init"]


@pytest.mark.parametrize("hub_id", ["ustc-community/dfine_n_coco", "ustc-community/dfine-nano-coco"])
def test_hub_id_through_offline_cache(
    tmp_path: Path, cache_snapshot: Callable[[str, Path], Path], hub_id: str
) -> None:
    source = create_model("dfine_n", seed=2, input_size=SMALL)
    source.model.save_pretrained(tmp_path / "saved")
    snapshot = cache_snapshot(hub_id, tmp_path / "saved")
    adapter = create_model("dfine_n", weights=hub_id, input_size=SMALL)
    assert adapter.weights.source == "hub" and adapter.weights.identifier == hub_id
    assert adapter.weights.revision == snapshot.name
    x = source.example_input(1, SMALL)
    assert torch.equal(_outputs(adapter, x)["logits"], _outputs(source, x)["logits"])
    # "auto" finds the same cached weights without being told the id
    auto = create_model("dfine_n", weights="auto", input_size=SMALL)
    assert auto.weights.source == "hub" and auto.weights.identifier in source.spec.hub_ids


def test_hub_id_missing_offline_is_a_clear_error(hf_cache: Path) -> None:
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        create_model("dfine_n", weights="ustc-community/dfine_n_coco")


def test_auto_without_cache_falls_back_to_labelled_random_init(hf_cache: Path, caplog) -> None:
    adapter = create_model("dfine_n", weights="auto", seed=5)
    assert adapter.weights.is_random_init and adapter.weights.seed == 5
    assert "random-init" in caplog.text


def test_objects365_weights_set_the_label_set(tmp_path: Path) -> None:
    source = create_model("dfine_n", num_classes=366, input_size=SMALL)
    source.model.save_pretrained(tmp_path / "o365")
    adapter = create_model("dfine_n", weights=str(tmp_path / "o365"), input_size=SMALL)
    assert adapter.spec.num_classes == 366 and adapter.spec.label_set == "obj365"
    with pytest.raises(CheckpointError, match=r"class_embed.*\(366, 128\) vs model \(80, 128\)"):
        create_model("dfine_n", weights=str(tmp_path / "o365"), num_classes=80)


def test_checkpoint_of_another_size_names_the_tensors(tmp_path: Path) -> None:
    create_model("dfine_s").model.save_pretrained(tmp_path / "s")
    with pytest.raises(CheckpointError) as info:
        create_model("dfine_n", weights=str(tmp_path / "s"))
    message = str(info.value)
    assert "another shape" in message and "vs model" in message and "unexpected tensors" in message


def test_safetensors_state_dict_file(tmp_path: Path) -> None:
    source = create_model("dfine_n", seed=7, input_size=SMALL)
    state = {
        k: v.contiguous()
        for k, v in source.model.state_dict().items()
        if not k.startswith(("class_embed", "bbox_embed"))
    }
    path = tmp_path / "dfine_n.safetensors"
    save_file(state, str(path))
    loaded = create_model("dfine_n", weights=str(path), input_size=SMALL)
    x = source.example_input(1, SMALL)
    assert torch.equal(_outputs(loaded, x)["pred_boxes"], _outputs(source, x)["pred_boxes"])
    assert loaded.weights.source == "local" and loaded.weights.identifier == str(path)


# -- official checkpoints ---------------------------------------------------------------------------
#: transformers -> official names, written independently of dfine_bench/adapters/official.py.
_TO_OFFICIAL = [
    (r"model\.backbone\.model\.embedder\.(.+)", r"backbone.stem.\1"),
    (r"model\.backbone\.model\.encoder\.stages\.(.+)", r"backbone.stages.\1"),
    (r"model\.encoder_input_proj\.(\d+)\.0\.(.+)", r"encoder.input_proj.\1.conv.\2"),
    (r"model\.encoder_input_proj\.(\d+)\.1\.(.+)", r"encoder.input_proj.\1.norm.\2"),
    (
        r"model\.encoder\.aifi\.(\d+)\.layers\.(\d+)\.self_attn\.o_proj\.(.+)",
        r"encoder.encoder.\1.layers.\2.self_attn.out_proj.\3",
    ),
    (
        r"model\.encoder\.aifi\.(\d+)\.layers\.(\d+)\.mlp\.layers\.0\.(.+)",
        r"encoder.encoder.\1.layers.\2.linear1.\3",
    ),
    (
        r"model\.encoder\.aifi\.(\d+)\.layers\.(\d+)\.mlp\.layers\.1\.(.+)",
        r"encoder.encoder.\1.layers.\2.linear2.\3",
    ),
    (
        r"model\.encoder\.aifi\.(\d+)\.layers\.(\d+)\.self_attn_layer_norm\.(.+)",
        r"encoder.encoder.\1.layers.\2.norm1.\3",
    ),
    (
        r"model\.encoder\.aifi\.(\d+)\.layers\.(\d+)\.final_layer_norm\.(.+)",
        r"encoder.encoder.\1.layers.\2.norm2.\3",
    ),
    (r"model\.encoder\.(fpn|pan)_blocks\.(\d+)\.csp_rep1\.(.+)", r"encoder.\1_blocks.\2.cv2.0.\3"),
    (r"model\.encoder\.(fpn|pan)_blocks\.(\d+)\.csp_rep2\.(.+)", r"encoder.\1_blocks.\2.cv3.0.\3"),
    (r"model\.encoder\.(fpn|pan)_blocks\.(\d+)\.conv1\.(.+)", r"encoder.\1_blocks.\2.cv1.\3"),
    (r"model\.encoder\.(fpn|pan)_blocks\.(\d+)\.conv2\.(.+)", r"encoder.\1_blocks.\2.cv2.1.\3"),
    (r"model\.encoder\.(fpn|pan)_blocks\.(\d+)\.conv3\.(.+)", r"encoder.\1_blocks.\2.cv3.1.\3"),
    (r"model\.encoder\.(fpn|pan)_blocks\.(\d+)\.conv4\.(.+)", r"encoder.\1_blocks.\2.cv4.\3"),
    (r"model\.encoder\.downsample_convs\.(\d+)\.conv(\d)\.(.+)", r"encoder.downsample_convs.\1.0.cv\2.\3"),
    (r"model\.encoder\.lateral_convs\.(.+)", r"encoder.lateral_convs.\1"),
    (
        r"model\.decoder\.layers\.(\d+)\.self_attn\.o_proj\.(.+)",
        r"decoder.decoder.layers.\1.self_attn.out_proj.\2",
    ),
    (r"model\.decoder\.layers\.(\d+)\.encoder_attn\.(.+)", r"decoder.decoder.layers.\1.cross_attn.\2"),
    (r"model\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.(.+)", r"decoder.decoder.layers.\1.norm1.\2"),
    (r"model\.decoder\.layers\.(\d+)\.final_layer_norm\.(.+)", r"decoder.decoder.layers.\1.norm3.\2"),
    (r"model\.decoder\.layers\.(\d+)\.mlp\.layers\.0\.(.+)", r"decoder.decoder.layers.\1.linear1.\2"),
    (r"model\.decoder\.layers\.(\d+)\.mlp\.layers\.1\.(.+)", r"decoder.decoder.layers.\1.linear2.\2"),
    (r"model\.decoder\.layers\.(\d+)\.gateway\.(.+)", r"decoder.decoder.layers.\1.gateway.\2"),
    (r"model\.decoder\.lqe_layers\.(.+)", r"decoder.decoder.lqe_layers.\1"),
    (r"model\.decoder\.(up|reg_scale)", r"decoder.decoder.\1"),
    (r"model\.decoder\.class_embed\.(.+)", r"decoder.dec_score_head.\1"),
    (r"model\.decoder\.bbox_embed\.(.+)", r"decoder.dec_bbox_head.\1"),
    (r"model\.decoder\.(pre_bbox_head|query_pos_head)\.(.+)", r"decoder.\1.\2"),
    (r"model\.denoising_class_embed\.(.+)", r"decoder.denoising_class_embed.\1"),
    (r"model\.enc_output\.0\.(.+)", r"decoder.enc_output.proj.\1"),
    (r"model\.enc_output\.1\.(.+)", r"decoder.enc_output.norm.\1"),
    (r"model\.(enc_score_head|enc_bbox_head)\.(.+)", r"decoder.\1.\2"),
]


def to_official(state: dict[str, torch.Tensor], reference: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """An official-format D-FINE state dict holding the same weights as a transformers one."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith(("class_embed.", "bbox_embed.")):  # tied copies of the decoder heads
            continue
        fused = re.fullmatch(
            r"model\.(encoder\.aifi|decoder\.layers)\.(.+)\.self_attn\.([qkv])_proj\.(weight|bias)", key
        )
        if fused:
            scope, rest, part, kind = fused.groups()
            prefix = "encoder.encoder" if scope == "encoder.aifi" else "decoder.decoder.layers"
            qkv.setdefault(f"{prefix}.{rest}.self_attn.in_proj_{kind}", {})[part] = value
            continue
        for pattern, replacement in _TO_OFFICIAL:
            match = re.fullmatch(pattern, key)
            if match:
                new = match.expand(replacement)
                if new.startswith("backbone."):
                    new = new.replace(".convolution.", ".conv.").replace(".normalization.", ".bn.")
                out[new] = value
                break
        else:
            raise AssertionError(f"test mapping misses {key}")
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    out["decoder.up"], out["decoder.reg_scale"] = out["decoder.decoder.up"], out["decoder.decoder.reg_scale"]
    for buffer in ("decoder.anchors", "decoder.valid_mask"):  # recomputed by the model, shapes as recorded
        out[buffer] = torch.zeros(reference[buffer])
    return out


@pytest.mark.parametrize("layout", ["model", "ema", "module"])
def test_official_checkpoint_converts_to_the_same_model(
    tmp_path: Path, layout: str, official_dfine_n_keys: dict[str, list[int]]
) -> None:
    source = create_model("dfine_n", seed=11)
    official = to_official(source.model.state_dict(), official_dfine_n_keys)
    # the checkpoint we build has exactly the official model's tensor names and shapes
    assert {k: list(v.shape) for k, v in official.items()} == official_dfine_n_keys
    wrapped = {
        "model": {"model": official, "date": "2024-10-01"},
        # EMA weights win over the raw training weights (zeros here, so picking them would show)
        "ema": {
            "ema": {"module": official, "updates": 3},
            "model": {k: torch.zeros_like(v) for k, v in official.items()},
        },
        "module": {"module": official},
    }[layout]
    path = tmp_path / "dfine_n_coco.pth"
    torch.save(wrapped, path)
    converted = create_model("dfine_n", weights=str(path), input_size=SMALL)
    assert converted.weights.source == "official" and converted.weights.sha256 is not None
    reference = create_model("dfine_n", seed=11, input_size=SMALL)
    x = reference.example_input(2, SMALL)
    ours, theirs = _outputs(converted, x), _outputs(reference, x)
    torch.testing.assert_close(ours["logits"], theirs["logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(ours["pred_boxes"], theirs["pred_boxes"], atol=1e-5, rtol=0)


def test_official_checkpoint_with_unknown_keys_is_refused(
    tmp_path: Path, official_dfine_n_keys: dict[str, list[int]]
) -> None:
    official = to_official(create_model("dfine_n").model.state_dict(), official_dfine_n_keys)
    official["decoder.mystery_head.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pth"
    torch.save({"model": official}, path)
    with pytest.raises(CheckpointError, match=r"odd\.pth.*decoder\.mystery_head\.weight"):
        create_model("dfine_n", weights=str(path))


def test_official_checkpoint_of_another_size_is_refused(
    tmp_path: Path, official_dfine_n_keys: dict[str, list[int]]
) -> None:
    official = to_official(create_model("dfine_n").model.state_dict(), official_dfine_n_keys)
    path = tmp_path / "n.pth"
    torch.save({"model": official}, path)
    with pytest.raises(CheckpointError, match="another shape"):
        create_model("dfine_s", weights=str(path))


def test_official_obj365_checkpoint_infers_the_head(
    tmp_path: Path, official_dfine_n_keys: dict[str, list[int]]
) -> None:
    official = to_official(create_model("dfine_n", num_classes=366).model.state_dict(), official_dfine_n_keys)
    path = tmp_path / "dfine_n_obj365.pth"
    torch.save({"model": official}, path)
    adapter = create_model("dfine_n", weights=str(path), input_size=SMALL)
    assert adapter.spec.num_classes == 366 and adapter.spec.label_set == "obj365"


def test_deim_dfine_loads_through_the_dfine_converter(
    tmp_path: Path, official_dfine_n_keys: dict[str, list[int]]
) -> None:
    official = to_official(create_model("dfine_n", seed=4).model.state_dict(), official_dfine_n_keys)
    path = tmp_path / "deim_dfine_hgnetv2_n_coco.pth"
    torch.save({"model": official}, path)
    adapter = create_model("deim_dfine_n", weights=str(path), input_size=SMALL)
    assert adapter.spec.family == "deim" and adapter.weights.source == "official"


def test_parameter_groups_cover_the_model() -> None:
    adapter = create_model("dfine_n")
    groups = adapter.parameter_groups()
    assert groups["total"] == adapter.num_parameters() == count_parameters("dfine_n")
    assert groups["backbone"] + groups["encoder"] + groups["decoder"] == groups["total"]
    assert min(groups["backbone"], groups["encoder"], groups["decoder"]) > 100_000


@pytest.mark.slow
def test_onnx_export_matches_eager(tmp_path: Path) -> None:
    import onnxruntime as ort

    adapter = create_model("dfine_n", input_size=(320, 320))
    x = adapter.example_input(1, (320, 320))
    path = tmp_path / "dfine_n.onnx"
    torch.onnx.export(
        adapter.export_module().eval(),
        (x,),
        str(path),
        input_names=["pixel_values"],
        output_names=list(adapter.output_names),
        dynamo=False,
        opset_version=17,
    )
    outputs = ort.InferenceSession(str(path)).run(None, {"pixel_values": x.numpy()})
    eager = _outputs(adapter, x)
    for name, value in zip(adapter.output_names, outputs):
        np.testing.assert_allclose(value, eager[name].numpy(), atol=1e-4)


@pytest.mark.gpu
def test_cuda_predictions_match_cpu(images: list[np.ndarray]) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    cpu = create_model("dfine_n", seed=1, input_size=SMALL)
    gpu = create_model("dfine_n", seed=1, input_size=SMALL, device="cuda")
    for a, b in zip(cpu.predict(images), gpu.predict(images)):
        assert b.boxes.device.type == "cuda"
        torch.testing.assert_close(a.scores, b.scores.cpu(), atol=1e-3, rtol=0)
