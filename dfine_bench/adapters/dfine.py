"""D-FINE N/S/M/L/X (and DEIM's D-FINE, DEIMv2) through transformers' ``DFineForObjectDetection``.

Per-size architectures follow the official configs (Peterande/D-FINE,
``configs/dfine/dfine_hgnetv2_{n,s,m,l,x}_coco.yml`` and their includes): HGNetv2 B0/B0/B2/B4/B5
backbones, the hybrid encoder and the FDR decoder. Parameter counts equal the official
implementation's (see ``tests/adapters/test_dfine.py``). Heads: COCO-80 (``coco``, ``obj2coco``
releases) or Objects365's 366 classes (``obj365``), chosen from the weights or ``num_classes``.

Backbone BatchNorms are frozen (affine terms become buffers) exactly where the official config
sets ``freeze_norm: True`` (L and X), so parameter counts match the official model's; in eval mode
frozen and ordinary BatchNorm compute the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from dfine_bench.adapters.base import DetectorAdapter, ModelSpec
from dfine_bench.adapters.hf_common import FamilyBuilder, HFDetectionAdapter, build_adapter, hf_config
from dfine_bench.adapters.official import convert_state_dict, infer_num_classes, unwrap_official_checkpoint
from dfine_bench.adapters.registry import register_model

#: HGNetv2 variants used by D-FINE (official ``HGNetv2.arch_configs``), as transformers fields.
_HGNET: dict[str, dict[str, Any]] = {
    "B0": dict(
        stem_channels=[3, 16, 16],
        stage_in_channels=[16, 64, 256, 512],
        stage_mid_channels=[16, 32, 64, 128],
        stage_out_channels=[64, 256, 512, 1024],
        stage_num_blocks=[1, 1, 2, 1],
        stage_numb_of_layers=[3, 3, 3, 3],
        stage_kernel_size=[3, 3, 5, 5],
        hidden_sizes=[64, 256, 512, 1024],
    ),
    "B2": dict(
        stem_channels=[3, 24, 32],
        stage_in_channels=[32, 96, 384, 768],
        stage_mid_channels=[32, 64, 128, 256],
        stage_out_channels=[96, 384, 768, 1536],
        stage_num_blocks=[1, 1, 3, 1],
        stage_numb_of_layers=[4, 4, 4, 4],
        stage_kernel_size=[3, 3, 5, 5],
        hidden_sizes=[96, 384, 768, 1536],
    ),
    "B4": dict(
        stem_channels=[3, 32, 48],
        stage_in_channels=[48, 128, 512, 1024],
        stage_mid_channels=[48, 96, 192, 384],
        stage_out_channels=[128, 512, 1024, 2048],
        stage_num_blocks=[1, 1, 3, 1],
        stage_numb_of_layers=[6, 6, 6, 6],
        stage_kernel_size=[3, 3, 5, 5],
        hidden_sizes=[128, 512, 1024, 2048],
    ),
    "B5": dict(
        stem_channels=[3, 32, 64],
        stage_in_channels=[64, 128, 512, 1024],
        stage_mid_channels=[64, 128, 256, 512],
        stage_out_channels=[128, 512, 1024, 2048],
        stage_num_blocks=[1, 2, 5, 2],
        stage_numb_of_layers=[6, 6, 6, 6],
        stage_kernel_size=[3, 3, 5, 5],
        hidden_sizes=[128, 512, 1024, 2048],
    ),
}

#: Per-size settings (official yml -> DFineConfig names). ``out_indices`` are 1-based stage
#: indices: official ``return_idx`` [1, 2, 3] -> [2, 3, 4].
DFINE_SIZES: dict[str, dict[str, Any]] = {
    "n": dict(
        backbone="B0",
        use_lab=True,
        out_indices=[3, 4],
        encoder_in_channels=[512, 1024],
        feat_strides=[16, 32],
        encoder_hidden_dim=128,
        encode_proj_layers=[1],
        encoder_ffn_dim=512,
        hidden_expansion=0.34,
        depth_mult=0.5,
        d_model=128,
        decoder_in_channels=[128, 128],
        decoder_ffn_dim=512,
        num_feature_levels=2,
        decoder_layers=3,
        decoder_n_points=[6, 6],
    ),
    "s": dict(
        backbone="B0",
        use_lab=True,
        out_indices=[2, 3, 4],
        encoder_in_channels=[256, 512, 1024],
        hidden_expansion=0.5,
        depth_mult=0.34,
        decoder_layers=3,
        decoder_n_points=[3, 6, 3],
    ),
    "m": dict(
        backbone="B2",
        use_lab=True,
        out_indices=[2, 3, 4],
        encoder_in_channels=[384, 768, 1536],
        depth_mult=0.67,
        decoder_layers=4,
        decoder_n_points=[3, 6, 3],
    ),
    "l": dict(
        backbone="B4",
        use_lab=False,
        freeze_norm=True,
        out_indices=[2, 3, 4],
        encoder_in_channels=[512, 1024, 2048],
        decoder_layers=6,
        decoder_n_points=[3, 6, 3],
    ),
    "x": dict(
        backbone="B5",
        use_lab=False,
        freeze_norm=True,
        out_indices=[2, 3, 4],
        encoder_in_channels=[512, 1024, 2048],
        encoder_hidden_dim=384,
        encoder_ffn_dim=2048,
        decoder_in_channels=[384, 384, 384],
        decoder_layers=6,
        decoder_n_points=[3, 6, 3],
    ),
}

_LONG = {"n": "nano", "s": "small", "m": "medium", "l": "large", "x": "xlarge"}
#: Official parameter counts (random-init official model, ``sum(p.numel())``; paper: 4/10/19/31/62 M).
OFFICIAL_PARAMS = {"n": 3_782_693, "s": 10_321_877, "m": 19_590_064, "l": 31_244_152, "x": 62_621_560}
PAPER_PARAMS_M = {"n": 4, "s": 10, "m": 19, "l": 31, "x": 62}


def releases_for(size: str) -> dict[str, tuple[str, ...]]:
    """D-FINE-``size``'s weight releases: tag -> its hub ids and official checkpoint file names."""
    long = _LONG[size]

    def sources(release: str, suffix: str = "") -> tuple[str, ...]:
        dashed = release + suffix.replace("_", "-")
        return (
            f"ustc-community/dfine_{size}_{release}{suffix}",
            f"ustc-community/dfine-{long}-{dashed}",
            f"dfine_{size}_{release}{suffix}.pth",
        )

    obj2coco = sources("obj2coco")
    if size in ("n", "l"):  # these obj2coco releases carry the fine-tuning length in their name
        obj2coco += sources("obj2coco", "_e25")
    return {"coco": sources("coco"), "obj2coco": obj2coco, "obj365": sources("obj365")}


def deim_releases_for(size: str) -> dict[str, tuple[str, ...]]:
    """DEIM's D-FINE-``size`` release: official files only (the epoch count varies by size)."""
    epochs = {"n": 160, "s": 120, "m": 90, "l": 50, "x": 50}[size]  # Intellindust/DEIM README
    return {"coco": (f"deim_dfine_hgnetv2_{size}_coco_{epochs}e.pth",)}


def hub_ids_for(size: str) -> tuple[str, ...]:
    """Known hub ids of D-FINE-``size`` releases: COCO-80 heads first, then Objects365."""
    return tuple(s for sources in releases_for(size).values() for s in sources if "/" in s)


def dfine_config(size: str, num_classes: int) -> Any:
    """The ``DFineConfig`` of D-FINE-``size`` with a ``num_classes`` head."""
    from transformers import DFineConfig, HGNetV2Config

    settings = dict(DFINE_SIZES[size])
    backbone = hf_config(
        HGNetV2Config,
        **_HGNET[settings.pop("backbone")],
        stage_downsample=[False, True, True, True],
        stage_light_block=[False, False, True, True],
        use_learnable_affine_block=settings.pop("use_lab"),
        out_indices=settings.pop("out_indices"),
    )
    return hf_config(
        DFineConfig,
        backbone_config=backbone,
        num_labels=num_classes,
        freeze_backbone_batch_norms=settings.pop("freeze_norm", False),
        eval_size=None,
        anchor_image_size=None,
        **settings,
    )


class DFineAdapter(HFDetectionAdapter):
    """D-FINE family: 640x640 resize to [0, 1]; sigmoid top-300 over query x class scores."""

    group_prefixes: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "backbone": ("model.backbone.",),
        "encoder": ("model.encoder_input_proj.", "model.encoder."),
    }


def _convert_official(loaded: Any, path: str) -> tuple[dict[str, torch.Tensor], int | None]:
    official = unwrap_official_checkpoint(loaded, path)
    return convert_state_dict(official, path), infer_num_classes(official)


def _hf_num_classes(state: Mapping[str, torch.Tensor]) -> int | None:
    for key in ("model.decoder.class_embed.0.weight", "class_embed.0.weight"):
        if key in state:
            return int(state[key].shape[0])
    return None


def _dfine_class() -> type:
    from transformers import DFineForObjectDetection

    return DFineForObjectDetection


def dfine_family(size: str) -> FamilyBuilder:
    """How D-FINE-``size`` is built and loaded (shared with the trained fixture)."""
    return FamilyBuilder(
        make_config=lambda num_classes: dfine_config(size, num_classes),
        model_class=_dfine_class,
        adapter_cls=DFineAdapter,
        convert_official=_convert_official,
        num_classes_of=_hf_num_classes,
        reinit_convs=True,
    )


def _factory(size: str):
    family = dfine_family(size)

    def factory(spec: ModelSpec, **options: Any) -> DetectorAdapter:
        return build_adapter(spec, family, **options)

    return factory


# -- DEIMv2 (transformers' Deimv2ForObjectDetection, D-FINE's decoder with DEIMv2's changes) --------
#: DEIMv2-N (HGNetv2 B0): the layout of DEIMv2's ``deimv2_hgnetv2_n_coco.yml`` as transformers'
#: converter reads it. Released weights are validated tensor by tensor on load.
DEIMV2_N: dict[str, Any] = dict(
    encoder_in_channels=[512, 1024],
    feat_strides=[16, 32],
    encoder_hidden_dim=128,
    encode_proj_layers=[1],
    encoder_ffn_dim=512,
    hidden_expansion=0.34,
    depth_mult=0.5,
    d_model=128,
    decoder_in_channels=[128, 128],
    decoder_ffn_dim=512,
    num_feature_levels=2,
    decoder_layers=3,
    decoder_n_points=[6, 6],
    decoder_activation_function="silu",
)


class Deimv2Adapter(HFDetectionAdapter):
    group_prefixes: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "backbone": ("model.backbone.", "model.conv_encoder.model."),
        "encoder": ("model.encoder_input_proj.", "model.conv_encoder.", "model.encoder."),
    }


def deimv2_n_config(num_classes: int) -> Any:
    """The ``Deimv2Config`` of DEIMv2-N with a ``num_classes`` head."""
    from transformers import Deimv2Config, HGNetV2Config

    backbone = hf_config(
        HGNetV2Config,
        **_HGNET["B0"],
        stage_downsample=[False, True, True, True],
        stage_light_block=[False, False, True, True],
        use_learnable_affine_block=True,
        out_indices=[3, 4],
    )
    return hf_config(
        Deimv2Config,
        backbone_config=backbone,
        num_labels=num_classes,
        freeze_backbone_batch_norms=False,
        **DEIMV2_N,
    )


def _deimv2_class() -> type:
    from transformers import Deimv2ForObjectDetection

    return Deimv2ForObjectDetection


def _deimv2_family() -> FamilyBuilder:
    return FamilyBuilder(
        make_config=deimv2_n_config,
        model_class=_deimv2_class,
        adapter_cls=Deimv2Adapter,
        num_classes_of=_hf_num_classes,
        reinit_convs=True,
    )


def _register() -> None:
    for size in DFINE_SIZES:
        common: dict[str, Any] = dict(
            input_size=(640, 640),
            num_classes=80,
            label_set="coco80",
            fdr=True,
            fdr_bins=32,
            go_lsd=True,
            num_queries=300,
            detections_per_image=300,
        )
        register_model(
            ModelSpec(
                name=f"dfine_{size}",
                family="dfine",
                hub_ids=hub_ids_for(size),
                releases=releases_for(size),
                weights_formats=("random-init", "hub", "local", "official"),
                description=f"D-FINE-{size.upper()} (HGNetv2 {DFINE_SIZES[size]['backbone']}), "
                "transformers DFine",
                extra={
                    "official_params": OFFICIAL_PARAMS[size],
                    "paper_params_m": PAPER_PARAMS_M[size],
                    "feat_strides": list(
                        DFINE_SIZES[size].get("feat_strides", [8, 16, 32])
                    ),  # DFineConfig default
                },
                **common,
            ),
            _factory(size),
        )
        register_model(
            ModelSpec(
                name=f"deim_dfine_{size}",
                family="deim",
                releases=deim_releases_for(size),
                weights_formats=("random-init", "local", "official"),
                description=f"DEIM-D-FINE-{size.upper()}: DEIM-trained weights on the D-FINE-{size.upper()} "
                "architecture (official DEIM .pth load through the D-FINE converter)",
                extra={
                    "official_params": OFFICIAL_PARAMS[size],
                    "feat_strides": list(DFINE_SIZES[size].get("feat_strides", [8, 16, 32])),
                },
                **common,
            ),
            _factory(size),
        )
    register_model(
        ModelSpec(
            name="deimv2_hgnetv2_n",
            family="deimv2",
            input_size=(640, 640),
            num_classes=80,
            fdr=True,
            fdr_bins=32,
            go_lsd=True,
            num_queries=300,
            detections_per_image=300,
            hub_ids=("Intellindust/DEIMv2_HGNetv2_N_COCO",),
            releases={"coco": ("Intellindust/DEIMv2_HGNetv2_N_COCO",)},
            description="DEIMv2-N (HGNetv2 B0) through transformers' Deimv2ForObjectDetection",
        ),
        lambda spec, **options: build_adapter(spec, _deimv2_family(), **options),
    )


_register()
