"""Fixtures for the evaluation tests: generated datasets, the tiny rule-based adapter, configs."""

from __future__ import annotations

import pytest
import torch
from eval_tiny_adapter import TinyAdapter

from dfine_bench.config.settings import DatasetSettings, EvaluationSettings
from dfine_bench.data import GeneratedParams, ResolvedDataset, generate_dataset, resolve_dataset


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the machine's cores are shared


@pytest.fixture(scope="session")
def gen_dataset(tmp_path_factory: pytest.TempPathFactory) -> ResolvedDataset:
    """24 generated images, 240x320."""
    cfg = DatasetSettings(kind="generated", num_images=24, image_size=[240, 320], seed=1)
    return resolve_dataset(cfg, tmp_path_factory.mktemp("evalgen"))


@pytest.fixture(scope="session")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> ResolvedDataset:
    """300 generated images for the engine-agreement tests (only the annotations are used)."""
    out = tmp_path_factory.mktemp("many")
    images, ann = generate_dataset(out, GeneratedParams(num_images=300, image_size=(240, 320), seed=5))
    return ResolvedDataset(name="generated", images_dir=images, annotations=ann, generated=True)


@pytest.fixture
def adapter() -> TinyAdapter:
    return TinyAdapter()


@pytest.fixture
def eval_cfg() -> EvaluationSettings:
    return EvaluationSettings(batch_size=4, num_workers=0)
