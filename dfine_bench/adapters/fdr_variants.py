"""DETR baselines with D-FINE's FDR box head and GO-LSD loss: the paper's Table 2 as models.

Each variant is its baseline with only the box head (``dfine_bench.fdr.head``) and loss
(``dfine_bench.fdr.loss``) changed; backbone, encoder, queries, decoder layers, class heads,
pre/post-processing and the baseline's own loss terms are the baseline's:

* ``rtdetr_r18+fdr``, ``rtdetr_r50+fdr``: RT-DETR (ResNet-vd) through transformers;
* ``deformable_detr_refine``: the Table 2 baseline, Deformable-DETR *with iterative box
  refinement* (``deformable_detr`` is the plain single-stage model); ``deformable_detr+fdr``.

No released weights exist: the variants build random-init (labelled so) or load a local
``save_pretrained`` folder (e.g. written by ``dfine-bench train``). The head's tensors are named
``model.decoder.fdr.*`` where a baseline has ``model.decoder.bbox_embed.*``, so a checkpoint of
the other kind fails to load with those keys listed. Options (``create_model(name, ...)``):
``go_lsd`` (default True; False trains FDR with the baseline's loss only), ``fdr_bins``,
``fdr_a``, ``fdr_c``, ``fdr_quality`` and ``config_overrides`` (fields set on the transformers
config, e.g. a reduced model for the ablation).

DAB-DETR is not offered: see ``UNSUPPORTED``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.adapters.detr_family import (
    COCO91,
    DetrFamilyAdapter,
    _check_no_timm,
    detr_family_config,
)
from dfine_bench.adapters.detr_family import (
    _num_classes_of as _detr_num_classes_of,
)
from dfine_bench.adapters.hf_common import FamilyBuilder, build_adapter
from dfine_bench.adapters.registry import register_model
from dfine_bench.adapters.rtdetr import (
    RTDetrAdapter,
    rtdetr_config,
)
from dfine_bench.adapters.rtdetr import (
    _num_classes_of as _rtdetr_num_classes_of,
)
from dfine_bench.adapters.spec import ModelSpec
from dfine_bench.errors import ConfigError
from dfine_bench.fdr.head import FdrSettings

SUFFIX = "+fdr"
#: baseline -> its FDR variant
VARIANTS = {
    "rtdetr_r18": "rtdetr_r18+fdr",
    "rtdetr_r50": "rtdetr_r50+fdr",
    "deformable_detr_refine": "deformable_detr+fdr",
}
#: Baselines FDR does not attach to here, and why (shown when such a variant is asked for).
UNSUPPORTED = {
    "deformable_detr": "this is single-stage Deformable-DETR without box refinement; FDR refines the "
    "box layer by layer, so it attaches to the refining baseline: use deformable_detr+fdr "
    "(baseline deformable_detr_refine)",
    "dab_detr": "transformers' DabDetrDecoder computes each layer's sine query embedding, query scaling "
    "and width/height-modulated attention from the current box inside one forward, with one box MLP "
    "shared by all layers (bbox_embed_diff_each_layer=False); FDR needs that decoder loop "
    "re-implemented around the family's layers, which is not done yet",
    "detr_r50": "DETR predicts each layer's boxes independently (no reference boxes to refine)",
    "conditional_detr": "Conditional-DETR refines reference points, not boxes, and predicts boxes "
    "independently per layer",
}
FDR_FLAGS = ("fdr_bins", "fdr_a", "fdr_c", "fdr_quality")


class FdrUnsupportedError(ConfigError):
    """An FDR variant asked for on a baseline FDR cannot attach to."""


def variant_of(baseline: str) -> str:
    """The FDR variant of ``baseline``; a clear error naming the model when there is none."""
    if baseline in VARIANTS:
        return VARIANTS[baseline]
    if baseline in VARIANTS.values():
        return baseline
    from dfine_bench.adapters.registry import get_spec

    spec = get_spec(baseline)  # an unknown name: the registry's error, with close matches
    if spec.fdr:
        why = f"{baseline} already has an FDR decoder"
    else:
        why = UNSUPPORTED.get(baseline, f"no FDR variant is built for the {spec.family} family")
    raise FdrUnsupportedError(
        f"FDR cannot attach to model {baseline!r}: {why}. Baselines with an FDR variant: "
        + ", ".join(f"{b} -> {v}" for b, v in VARIANTS.items())
    )


def _settings(options: dict[str, Any]) -> tuple[Any, bool, dict[str, Any]]:
    default = FdrSettings()
    settings = FdrSettings(
        bins=int(options.pop("fdr_bins", default.bins)),
        a=float(options.pop("fdr_a", default.a)),
        c=float(options.pop("fdr_c", default.c)),
        quality=bool(options.pop("fdr_quality", default.quality)),
    )
    settings.validate("model option fdr")
    go_lsd = bool(options.pop("go_lsd", True))
    overrides = dict(options.pop("config_overrides", None) or {})
    return settings, go_lsd, overrides


def _overridden(config: Any, overrides: Mapping[str, Any], model: str) -> Any:
    """Set ``overrides`` on a transformers config; ``backbone_config.depths`` reaches the backbone's."""
    for key, value in overrides.items():
        target = config
        *path, field = key.split(".")
        for part in path:
            target = getattr(target, part, None)
        if target is None or not hasattr(target, field):
            raise ConfigError(
                f"model {model}: config_overrides.{key} is not a field of its transformers config"
            )
        setattr(target, field, value)
    return config


def rtdetr_family(
    depth: str, fdr: Any | None, go_lsd: bool = True, overrides: Mapping[str, Any] | None = None
) -> FamilyBuilder:
    """RT-DETR-``depth`` (``fdr=None``: the baseline) with optional config overrides."""
    from dfine_bench.fdr.rtdetr import with_fdr

    def make_config(num_classes: int) -> Any:
        config = _overridden(rtdetr_config(depth, num_classes), overrides or {}, f"rtdetr_{depth}")
        return with_fdr(config, fdr, go_lsd) if fdr is not None else config

    def model_class() -> type:
        if fdr is None:
            from transformers import RTDetrForObjectDetection

            return RTDetrForObjectDetection
        from dfine_bench.fdr.rtdetr import RTDetrFdrForObjectDetection

        return RTDetrFdrForObjectDetection

    return FamilyBuilder(
        make_config=make_config,
        model_class=model_class,
        adapter_cls=RTDetrAdapter,
        num_classes_of=_rtdetr_num_classes_of,
        reinit_convs=True,
    )


def deformable_family(
    fdr: Any | None, go_lsd: bool = True, overrides: Mapping[str, Any] | None = None
) -> FamilyBuilder:
    """Single-stage Deformable-DETR with box refinement (``fdr=None``: the baseline)."""
    from dfine_bench.fdr.rtdetr import with_fdr

    def make_config(num_classes: int) -> Any:
        config = detr_family_config("deformable_detr", num_classes)
        config.with_box_refine = True
        config = _overridden(config, overrides or {}, "deformable_detr")
        return with_fdr(config, fdr, go_lsd) if fdr is not None else config

    def model_class() -> type:
        if fdr is None:
            from transformers import DeformableDetrForObjectDetection

            return DeformableDetrForObjectDetection
        from dfine_bench.fdr.deformable import DeformableDetrFdrForObjectDetection

        return DeformableDetrFdrForObjectDetection

    return FamilyBuilder(
        make_config=make_config,
        model_class=model_class,
        adapter_cls=DetrFamilyAdapter,
        check_config=_check_no_timm,
        num_classes_of=_detr_num_classes_of,
    )


def _factory(make_family: Callable[[Any | None, bool, Mapping[str, Any]], FamilyBuilder], fdr: bool):
    def factory(spec: ModelSpec, **options: Any) -> DetectorAdapter:
        settings, go_lsd, overrides = _settings(options)
        family = make_family(settings if fdr else None, go_lsd, overrides)
        adapter = build_adapter(spec, family, **options)
        if fdr:  # the spec says what was built
            adapter.spec = dataclasses.replace(adapter.spec, fdr_bins=settings.bins, go_lsd=go_lsd)
        return adapter

    return factory


def _register() -> None:
    for depth, params_m in (("r18", 20), ("r50", 42)):
        register_model(
            ModelSpec(
                name=f"rtdetr_{depth}{SUFFIX}",
                family="rtdetr",
                input_size=(640, 640),
                num_classes=80,
                fdr=True,
                fdr_bins=32,
                go_lsd=True,
                num_queries=300,
                detections_per_image=300,
                weights_formats=("random-init", "local"),
                description=f"RT-DETR-{depth.upper()} with D-FINE's FDR box head and GO-LSD loss "
                "(Table 2 recipe; no released weights)",
                extra={"baseline": f"rtdetr_{depth}", "paper_params_m": params_m},
            ),
            _factory(functools.partial(rtdetr_family, depth), fdr=True),
        )
    common = dict(
        input_size=(800, 1333),
        num_classes=COCO91,
        label_set="coco91",
        num_queries=300,
        detections_per_image=100,
    )
    register_model(
        ModelSpec(
            name="deformable_detr_refine",
            family="deformable_detr",
            weights_formats=("random-init", "local"),
            description="Deformable-DETR ResNet-50 with iterative box refinement (single stage), the "
            "D-FINE paper's Table 2 baseline; input_size = (shortest edge, longest edge)",
            extra={"paper_params_m": 40},
            **common,  # type: ignore[arg-type]
        ),
        _factory(deformable_family, fdr=False),
    )
    register_model(
        ModelSpec(
            name=f"deformable_detr{SUFFIX}",
            family="deformable_detr",
            fdr=True,
            fdr_bins=32,
            go_lsd=True,
            weights_formats=("random-init", "local"),
            description="Deformable-DETR ResNet-50 (box refinement) with D-FINE's FDR box head and GO-LSD "
            "loss (Table 2 recipe; no released weights); input_size = (shortest edge, longest edge)",
            extra={"baseline": "deformable_detr_refine", "paper_params_m": 40},
            **common,  # type: ignore[arg-type]
        ),
        _factory(deformable_family, fdr=True),
    )


_register()
