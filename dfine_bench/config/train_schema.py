"""Hydra structured config of ``dfine-bench train`` (root config: ``suites/train.yaml``).

The defaults are the recipe of the committed fixture (``dfine_fixture``): D-FINE-N trained from
scratch at 320x320 on 4000 generated images (seed 1000), checked on the held-out generated split
the default suite evaluates (seed 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dfine_bench.config.checks import check_choice, check_device, check_float, check_int, check_size
from dfine_bench.config.schema import DatasetConfig, DatasetKind, ModelConfig, WeightsConfig, WeightsSource
from dfine_bench.config.settings import LOG_LEVELS, PROGRESS, DatasetSettings
from dfine_bench.errors import ConfigError


@dataclass
class TrainSection:
    steps: int = 1500
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    grad_clip: float = 0.1
    ema_decay: float = 0.999
    ema_warmup: int = 200
    seed: int = 0  # initial weights, sample order and the model's own sampling
    checkpoint_every: int = 100
    log_every: int = 20
    out_dir: str | None = None  # None: <results_dir>/train/<model>-<settings hash>
    results_dir: str = "results"
    eval_train_images: int = 200  # AP on the first N training images (0: skip)


def _train_split() -> DatasetConfig:
    return DatasetConfig(kind=DatasetKind.generated, name="generated-train", num_images=4000, seed=1000)


def _val_split() -> DatasetConfig:
    # The default suite's dataset (generated, seed 0): held out, since training uses seed 1000.
    return DatasetConfig(kind=DatasetKind.generated, name="generated", num_images=24, seed=0)


@dataclass
class TrainConfig:
    """The root config of ``dfine-bench train``."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="dfine_fixture"))
    weights: WeightsConfig = field(default_factory=lambda: WeightsConfig(source=WeightsSource.random_init))
    dataset: DatasetConfig = field(default_factory=_train_split)  # suites/train.yaml: generated, seed 1000
    val_dataset: DatasetConfig | None = field(default_factory=_val_split)
    train: TrainSection = field(default_factory=TrainSection)
    input_size: list[int] | None = None  # [h, w]; None: model.input_size, else the model's own
    device: str = "cpu"
    progress: str = "auto"
    log_level: str = "INFO"


def _finite(
    key: str, value: object, *, minimum: float, strict: bool = False, maximum: float | None = None
) -> None:
    number = check_float(key, value, minimum=minimum, strict=strict, maximum=maximum)
    if not math.isfinite(number):
        raise ConfigError(f"{key}={value}: must be a finite number")


def check_train_config(cfg: TrainConfig) -> None:
    """The typed checks ``run`` has, for ``dfine-bench train``: one ``ConfigError`` line naming the key,
    before any model, data or folder is touched."""
    t, k = cfg.train, "train."
    for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
        check_int(k + name, getattr(t, name), minimum=1)
    for name in ("warmup_steps", "ema_warmup", "seed", "eval_train_images"):
        check_int(k + name, getattr(t, name), minimum=0)
    _finite(k + "lr", t.lr, minimum=0, strict=True)
    _finite(k + "weight_decay", t.weight_decay, minimum=0)
    _finite(k + "grad_clip", t.grad_clip, minimum=0, strict=True)
    _finite(k + "min_lr_ratio", t.min_lr_ratio, minimum=0, maximum=1)
    _finite(k + "ema_decay", t.ema_decay, minimum=0, maximum=1)
    if t.ema_decay >= 1:
        raise ConfigError(f"{k}ema_decay={t.ema_decay}: must be below 1 (1 would never update the EMA)")
    for name in ("out_dir", "results_dir"):
        value = getattr(t, name)
        if value is not None and not str(value).strip():
            raise ConfigError(f"{k}{name}={value!r}: must name a folder")
    check_device(cfg.device)
    check_choice("progress", cfg.progress, PROGRESS)
    check_choice("log_level", cfg.log_level, LOG_LEVELS)
    if cfg.input_size is not None:
        check_size("input_size", cfg.input_size)
    DatasetSettings.from_config(cfg.dataset)  # num_images bound, image size, exif, size_mismatch ...
    if cfg.val_dataset is not None:
        DatasetSettings.from_config(cfg.val_dataset)
