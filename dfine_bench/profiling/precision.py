"""Reduced precision's inputs: the calibration split a quantizing backend gets, and the start-up checks.

``calibration_for`` makes the calibration data of an int8 cell: a generated split of
``backend.options.calibration_images`` images drawn from ``calibration_seed``, preprocessed by the
adapter, recorded as ``Calibration.info`` (method and image count end up in the record). It is
generated under ``<work_dir>/calibration/`` and reused.

``check_precision_inputs`` is the start-up check the runner calls before any export; each bad
input is one ``ConfigError`` line:

- a precision the backend cannot run (naming the ones it can, its ``precisions``);
- a calibration split that is the evaluation split (a generated evaluation set from the same seed:
  the generator is a function of its seed, so another seed gives other images);
- ``keep_fp32`` patterns that match no module of a model of the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfine_bench.adapters.registry import create_model
from dfine_bench.backends import BackendSpec, Calibration, get_backend
from dfine_bench.data.dataset import read_image
from dfine_bench.data.generated import GeneratedParams, generate_dataset
from dfine_bench.errors import ConfigError

if TYPE_CHECKING:
    from dfine_bench.adapters.base import DetectorAdapter
    from dfine_bench.config.settings import DatasetSettings

#: the dataset kinds whose images may come from the same generator as the calibration split
_GENERATED_KINDS = ("generated", "auto")


def needs_calibration(spec: BackendSpec) -> bool:
    return spec.dtype in getattr(get_backend(spec.name), "calibrated", ())


def calibration_params(spec: BackendSpec) -> Any:
    """The ``GeneratedParams`` of ``spec``'s calibration split."""
    return GeneratedParams(
        num_images=int(spec.options.get("calibration_images") or 16),
        seed=int(spec.options.get("calibration_seed", 1000)),
    )


def calibration_images(spec: BackendSpec, work_dir: Path) -> list[Any]:
    """The calibration split's images (HWC uint8 RGB), generated once under ``work_dir/calibration``."""

    params = calibration_params(spec)
    images_dir, _ = generate_dataset(Path(work_dir) / "calibration" / params.key(), params)
    return [read_image(p) for p in sorted(images_dir.glob("*.png"))]


def calibration_for(adapter: DetectorAdapter, spec: BackendSpec, work_dir: Path) -> Calibration | None:
    """The calibration data of ``spec`` (None when its precision needs none): one preprocessed
    image per batch."""
    if not needs_calibration(spec):
        return None
    params = calibration_params(spec)
    batches = tuple(adapter.preprocess([img]).pixel_values for img in calibration_images(spec, work_dir))
    info = {
        "split": "generated",
        "images": len(batches),
        "seed": params.seed,
        "image_size": list(params.image_size),
        "generator_version": params.as_dict()["generator_version"],
    }
    return Calibration(batches=batches, info=info)


def _check_precision(spec: BackendSpec, key: str) -> None:
    backend = get_backend(spec.name)
    can = tuple(getattr(backend, "precisions", ())) or tuple(
        dict.fromkeys(d for ds in backend.devices.values() for d in ds)
    )
    if spec.dtype not in can:
        raise ConfigError(
            f"{key}.dtype={spec.dtype}: the {spec.name} backend cannot run {spec.dtype}; "
            f"it runs {', '.join(can)} (dfine-bench list backends)"
        )


def _check_calibration(spec: BackendSpec, key: str, dataset: DatasetSettings | None) -> None:
    if dataset is None or not needs_calibration(spec):
        return
    seed = int(spec.options.get("calibration_seed", 1000))
    if dataset.kind in _GENERATED_KINDS and seed == dataset.seed:
        raise ConfigError(
            f"{key}.options.calibration_seed={seed} is dataset.seed: the calibration images of "
            f"{spec.key} would be the evaluation images; choose another calibration_seed (default 1000)"
        )


def _module_names(model: str, cache: dict[str, list[str]]) -> list[str]:
    if model not in cache:
        adapter = create_model(model, weights="random-init")  # the names only: no weights needed
        cache[model] = [n for n, _ in adapter.export_module().named_modules() if n]
    return cache[model]


def _check_keep_fp32(spec: BackendSpec, key: str, models: Sequence[str], cache: dict[str, list[str]]) -> None:
    import fnmatch

    patterns = [str(p) for p in spec.options.get("keep_fp32") or []]
    if not patterns:
        return
    if spec.dtype == "fp32":
        raise ConfigError(f"{key}.options.keep_fp32 needs a reduced precision ({key}.dtype is fp32)")
    for model in models:
        names = _module_names(model, cache)
        for p in patterns:
            if not any(fnmatch.fnmatchcase(n, p) for n in names):
                example = next((n for n in names if n.count(".") == 3), names[0] if names else "-")
                raise ConfigError(
                    f"{key}.options.keep_fp32: {p!r} matches no module of {model} "
                    f"(module paths look like {example!r}); fix the pattern or drop it"
                )


def check_precision_inputs(
    specs: Iterable[tuple[str, BackendSpec]], *, models: Sequence[str], dataset: DatasetSettings | None
) -> None:
    """Start-up: every ``(config key, spec)`` runs a precision its backend has, calibrates on images
    that are not the evaluation's and keeps only existing modules in fp32 (``ConfigError`` otherwise)."""
    cache: dict[str, list[str]] = {}
    for key, spec in specs:
        _check_precision(spec, key)
        _check_calibration(spec, key, dataset)
        _check_keep_fp32(spec, key, models, cache)


def diagnosis_images(adapter: DetectorAdapter, work_dir: Path, n: int = 16, seed: int = 1000) -> list[Any]:
    """Preprocessed images of the calibration split (never the evaluation's) for a layer-by-layer
    diagnosis: the first ``n`` images drawn from ``seed``."""

    params = GeneratedParams(num_images=n, seed=seed)
    images_dir, _ = generate_dataset(Path(work_dir) / "calibration" / params.key(), params)
    return [adapter.preprocess([read_image(p)]).pixel_values for p in sorted(images_dir.glob("*.png"))]
