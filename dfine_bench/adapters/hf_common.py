"""Shared machinery for the adapters built on transformers' detection models.

* preprocessors (defined in ``hf_preprocessors``, re-exported here): fixed-size resize to [0, 1]
  (D-FINE, RT-DETR, DEIM) and the DETR rule (shortest edge 800 / longest 1333, ImageNet
  normalisation, padding + pixel mask);
* postprocessors: sigmoid top-k over query x class scores (focal-loss heads) and DETR's softmax
  argmax per query;
* ``HFDetectionAdapter``: forward / postprocess / parameter groups for one built model;
* ``build_adapter``: the weights flow every family shares (random-init, auto, hub, local
  directory, checkpoint file) ending in a strict load.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from safetensors import SafetensorError

from dfine_bench.adapters.base import (
    Detections,
    DetectorAdapter,
    ModelSpec,
    Preprocessor,
    RawOutputs,
    WeightsInfo,
)
from dfine_bench.adapters.hf_preprocessors import DetrPreprocessor as DetrPreprocessor  # re-exported
from dfine_bench.adapters.hf_preprocessors import ResizePreprocessor
from dfine_bench.adapters.imports import explain_import_error
from dfine_bench.adapters.labels import label_set_for, label_to_category
from dfine_bench.adapters.weights import (
    AUTO,
    RANDOM_INIT,
    WeightsRequest,
    cached_snapshot,
    check_loading_info,
    fetch_hub_snapshot,
    inspect_pretrained_dir,
    load_state_dict_strict,
    num_labels_from_config,
    parse_weights,
    read_checkpoint_file,
    sha256_files,
    snapshot_revision,
)
from dfine_bench.errors import CheckpointError, DependencyError

log = logging.getLogger(__name__)


# -- postprocessors --------------------------------------------------------------------------------
def _boxes_to_pixels(boxes_cxcywh: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    cx, cy, w, h = boxes_cxcywh.float().unbind(-1)
    xyxy = torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)
    height, width = size
    return xyxy * torch.tensor([width, height, width, height], dtype=xyxy.dtype, device=xyxy.device)


def _detections(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, label_map: torch.Tensor
) -> Detections:
    labels = labels.long()
    return Detections(
        boxes=boxes.float(),
        scores=scores.float(),
        labels=labels,
        category_ids=label_map.to(labels.device)[labels],
    )


def sigmoid_topk_postprocess(
    outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]], top_k: int, label_map: Sequence[int]
) -> list[Detections]:
    """Focal-loss heads (D-FINE, RT-DETR, Deformable/Conditional/DAB-DETR): sigmoid scores over
    every (query, class) pair, keep the ``top_k`` best, no threshold."""
    logits, boxes = outputs["logits"], outputs["pred_boxes"]
    num_classes = logits.shape[-1]
    scores = logits.float().sigmoid().flatten(1)
    k = min(top_k, scores.shape[1])
    top_scores, index = torch.topk(scores, k, dim=1)
    labels = index % num_classes
    query = torch.div(index, num_classes, rounding_mode="floor")
    table = torch.as_tensor(list(label_map), dtype=torch.long)
    results = []
    for b, size in enumerate(original_sizes):
        picked = boxes[b].gather(0, query[b].unsqueeze(-1).expand(-1, 4))
        results.append(_detections(_boxes_to_pixels(picked, size), top_scores[b], labels[b], table))
    return results


def softmax_postprocess(
    outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]], label_map: Sequence[int]
) -> list[Detections]:
    """DETR: softmax over classes + "no object", drop the latter, best class per query (one
    detection per query, ``num_queries`` in all), no threshold."""
    probs = outputs["logits"].float().softmax(-1)[..., :-1]
    scores, labels = probs.max(-1)
    table = torch.as_tensor(list(label_map), dtype=torch.long)
    return [
        _detections(_boxes_to_pixels(outputs["pred_boxes"][b], size), scores[b], labels[b], table)
        for b, size in enumerate(original_sizes)
    ]


# -- the adapter -----------------------------------------------------------------------------------
class HFDetectionAdapter(DetectorAdapter):
    """An adapter around a transformers ``*ForObjectDetection`` model.

    Subclasses choose the preprocessor and postprocessor; ``group_prefixes`` names which
    parameter-name prefixes form the backbone and the encoder (the rest is the decoder).
    """

    group_prefixes: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(
        self, spec: ModelSpec, model: torch.nn.Module, weights: WeightsInfo, label_map: Sequence[int]
    ) -> None:
        self.spec = spec
        self.model = model
        self.weights = weights
        self.label_to_category = list(label_map)

    def preprocessor(self) -> Preprocessor:
        return ResizePreprocessor(self.spec.input_size)

    def forward(self, pixel_values: torch.Tensor, **extras: torch.Tensor) -> RawOutputs:
        out = self.model(pixel_values=pixel_values, **extras)
        return {"logits": out.logits, "pred_boxes": out.pred_boxes}

    def postprocess(self, outputs: RawOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        top_k = self.spec.detections_per_image or int(outputs["logits"].shape[1])
        return sigmoid_topk_postprocess(outputs, original_sizes, top_k, self.label_to_category)

    def parameter_groups(self) -> dict[str, int]:
        if not self.group_prefixes:
            return super().parameter_groups()
        groups = {"backbone": 0, "encoder": 0, "decoder": 0}
        for name, param in self.model.named_parameters():  # named_parameters skips tied duplicates
            group = next(
                (g for g, prefixes in self.group_prefixes.items() if name.startswith(prefixes)), "decoder"
            )
            groups[group] += param.numel()
        return {"total": sum(groups.values()), **groups}


# -- building with weights ------------------------------------------------------------------------
def hf_config(config_cls: Callable[..., Any], **fields: Any) -> Any:
    """``config_cls(**fields)``, a transformers config.

    Why a helper: transformers 5's configs take ``num_labels``, ``out_features`` and ``out_indices``
    through ``**kwargs`` (handed on to ``__post_init__``), which their dataclass signature does not
    declare; passed through here, the call type-checks on transformers 4 and 5 alike.
    """
    return config_cls(**fields)


@dataclass(frozen=True)
class FamilyBuilder:
    """How one family builds its model and adapter.

    ``make_config(num_classes)`` gives the transformers config of the registered architecture;
    ``model_class()`` the ``*ForObjectDetection`` class (imported lazily);
    ``convert_official`` (if any) turns an official training checkpoint into our key names;
    ``check_config`` may reject a checkpoint config this build cannot load (e.g. timm backbones);
    ``reinit_convs`` re-draws convolutions of random-init models (see ``reinit_convolutions``).
    """

    make_config: Callable[[int], Any]
    model_class: Callable[[], type]  # a transformers ``PreTrainedModel`` subclass
    adapter_cls: type[HFDetectionAdapter]
    convert_official: Callable[[Any, str], tuple[dict[str, torch.Tensor], int | None]] | None = None
    check_config: Callable[[Mapping[str, Any], str], None] | None = None
    num_classes_of: Callable[[Mapping[str, torch.Tensor]], int | None] | None = None
    reinit_convs: bool = False

    def resolved_class(self) -> type[Any]:
        """The model class; a broken import below transformers is named with its cause and fix.

        Typed loosely on purpose: transformers' ``from_pretrained`` is annotated to return the model
        alone, but with ``output_loading_info=True`` it returns (model, info).
        """
        try:
            return self.model_class()
        except ImportError as exc:  # transformers' lazy import hides the cause; find it
            raise DependencyError(explain_import_error("transformers", exc)) from exc

    def make_model(self, num_classes: int) -> torch.nn.Module:
        return self.resolved_class()(self.make_config(num_classes))

    def from_pretrained(self, directory: Path, num_classes: int, source: str) -> torch.nn.Module:
        """Load a ``save_pretrained`` directory into *our* architecture, failing on any misfit.

        transformers does the key renaming between its on-disk and in-memory layouts; passing our
        config (not the checkpoint's) is what makes a checkpoint of another size an error.
        """
        import transformers

        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # our error lists the misfit; skip its long table
        try:
            model, info = self.resolved_class().from_pretrained(
                str(directory),
                config=self.make_config(num_classes),
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                local_files_only=True,
                # fp32 whatever the file holds: an fp16 checkpoint (e.g. the committed fixture) would
                # otherwise make an fp16 model, and precision is the backend's choice, not the file's
                dtype=torch.float32,
            )
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            # one line: a truncated file's error spans several (safetensors' "incomplete metadata")
            reason = " ".join(str(exc).split())
            raise CheckpointError(f"weights {source} could not be loaded: {reason}") from exc
        finally:
            transformers.logging.set_verbosity(verbosity)
        check_loading_info(info, source)
        return model


def reinit_convolutions(model: torch.nn.Module) -> None:
    """Re-draw convolutions and BatchNorm affine terms with PyTorch's defaults (Kaiming-uniform; 1 and 0).

    Why: transformers initialises D-FINE's convolutions with std 0.01 and RT-DETR's BatchNorm
    weights with N(0, 0.01); with eval-mode BatchNorm (running stats 0/1) activations then shrink
    ~10-100x per layer and vanish (~1e-12) before the heads, so every query of a random-init model
    ties (RT-DETR-R18: all 2100 encoder scores equal) and top-k query selection is decided by
    tie-breaking, which differs between PyTorch and ONNX Runtime. The official code keeps
    PyTorch's default init, whose activations stay O(1). Frozen BatchNorms (buffers) are left alone.
    """
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
            module.reset_parameters()


def _adapted_spec(spec: ModelSpec, num_classes: int, input_size: tuple[int, int] | None) -> ModelSpec:
    label_set = spec.label_set if num_classes == spec.num_classes else label_set_for(num_classes)
    # a Hydra config hands sizes over as lists: stored as the (height, width) tuple the spec declares
    size = cast("tuple[int, int]", tuple(input_size or spec.input_size))
    return dataclasses.replace(spec, num_classes=num_classes, label_set=label_set, input_size=size)


def build_adapter(
    spec: ModelSpec,
    family: FamilyBuilder,
    *,
    weights: str | WeightsRequest = RANDOM_INIT,
    num_classes: int | None = None,
    seed: int = 0,
    input_size: tuple[int, int] | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device: str = "cpu",
    **unused: Any,
) -> HFDetectionAdapter:
    """The factory behind every transformers-based family (see ``create_model``).

    ``trust_remote_code`` is accepted for interface symmetry; these families never run code
    from a checkpoint (the architecture is ours, weights are read as tensors only).
    """
    if unused:
        log.debug("%s: ignoring options %s", spec.name, sorted(unused))
    size = cast("tuple[int, int]", tuple(input_size)) if input_size else spec.input_size  # may be a list
    request = parse_weights(weights)
    if request.kind == AUTO:
        request = _resolve_auto(spec, revision, seed)

    torch.manual_seed(seed)
    if request.kind == RANDOM_INIT:
        nc = num_classes or spec.num_classes
        model = _random_init_model(family, nc)
        info = WeightsInfo(source=RANDOM_INIT, seed=seed)
    elif request.kind in ("hub", "local"):
        model, nc, info = _load_directory(spec, family, request, num_classes, revision)
    else:  # a checkpoint file
        assert request.value is not None
        model, nc, info = _load_file(spec, family, Path(request.value), num_classes)

    model.eval().to(device)
    adapted = _adapted_spec(spec, nc, size)
    return family.adapter_cls(adapted, model, info, label_to_category(adapted.label_set, nc))


def _resolve_auto(spec: ModelSpec, revision: str | None, seed: int) -> WeightsRequest:
    """``weights=auto``: the first of the spec's hub ids already in the cache, else random-init."""
    hub_id = next((h for h in spec.hub_ids if cached_snapshot(h, revision) is not None), None)
    if hub_id is not None:
        return WeightsRequest("hub", hub_id)
    log.warning(
        "%s: no released weights in the Hugging Face cache (%s); using random-init (seed %d)",
        spec.name,
        ", ".join(spec.hub_ids) or "no hub ids known",
        seed,
    )
    return WeightsRequest(RANDOM_INIT)


def _random_init_model(family: FamilyBuilder, num_classes: int) -> torch.nn.Module:
    """A fresh model from the current torch seed (the caller seeds it)."""
    model = family.make_model(num_classes)
    if family.reinit_convs:
        reinit_convolutions(model)
    return model


def _load_directory(
    spec: ModelSpec,
    family: FamilyBuilder,
    request: WeightsRequest,
    num_classes: int | None,
    revision: str | None,
) -> tuple[torch.nn.Module, int, WeightsInfo]:
    """A ``save_pretrained`` directory: a hub snapshot (fetched or cached) or a local folder."""
    assert request.value is not None
    from_hub = request.kind == "hub"
    directory = fetch_hub_snapshot(request.value, revision) if from_hub else Path(request.value)
    found = inspect_pretrained_dir(directory)
    if family.check_config is not None:
        family.check_config(found.config, str(directory))
    nc = num_classes or num_labels_from_config(found.config) or spec.num_classes
    model = family.from_pretrained(
        directory, nc, f"{request.value} ({', '.join(f.name for f in found.files)})"
    )
    info = WeightsInfo(
        source=request.kind,
        identifier=request.value,
        sha256=sha256_files(found.files),
        revision=(revision or snapshot_revision(directory)) if from_hub else None,
        # a hub id listed in the spec's release data is that release; a local directory may hold anything
        release=spec.release_of(request.value) if from_hub else None,
    )
    return model, nc, info


def _load_file(
    spec: ModelSpec, family: FamilyBuilder, path: Path, num_classes: int | None
) -> tuple[torch.nn.Module, int, WeightsInfo]:
    """A single checkpoint file: an official training checkpoint (converted) or a state dict."""
    loaded = read_checkpoint_file(path)
    info = WeightsInfo(source="local", identifier=str(path), sha256=sha256_files([path]))
    if family.convert_official is not None and _looks_official(loaded):
        state, official_nc = family.convert_official(loaded, str(path))
        nc = num_classes or official_nc or spec.num_classes
        model = family.make_model(nc)
        load_state_dict_strict(model, state, str(path))
        # an official checkpoint under a release's own file name is that release (the spec's data)
        return model, nc, dataclasses.replace(info, source="official", release=spec.release_of(str(path)))
    if not (
        isinstance(loaded, Mapping) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values())
    ):
        kind = "an official training checkpoint" if _looks_official(loaded) else "not a flat state dict"
        raise CheckpointError(
            f"checkpoint {path} is {kind}; {spec.family} models load transformers-format state dicts "
            "(.safetensors) or save_pretrained directories"
        )
    nc = num_classes or (family.num_classes_of(loaded) if family.num_classes_of else None) or spec.num_classes
    # let transformers map either of its key layouts (on-disk or in-memory) onto the model
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "model.safetensors"
        if path.suffix == ".safetensors":
            link.symlink_to(path.resolve())
        else:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in loaded.items()}, str(link))
        model = family.from_pretrained(Path(tmp), nc, str(path))
    return model, nc, info


def _looks_official(loaded: Any) -> bool:
    from dfine_bench.adapters.official import is_official_state_dict

    if not isinstance(loaded, Mapping):
        return False
    if any(k in loaded for k in ("model", "ema", "module")) and not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        return True
    return is_official_state_dict(loaded)
