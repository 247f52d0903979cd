"""Hydra structured config of ``dfine-bench train`` (root config: ``suites/train.yaml``).

The defaults are the recipe of the committed fixture (``dfine_fixture``): D-FINE-N trained from
scratch at 320x320 on 4000 generated images (seed 1000), checked on the held-out generated split
the default suite evaluates (seed 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfine_bench.config.schema import DatasetConfig, DatasetKind, ModelConfig, WeightsConfig, WeightsSource


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
