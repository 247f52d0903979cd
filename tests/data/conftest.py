"""Fixtures for the dataset tests: small generated datasets written under pytest's tmp dirs."""

from __future__ import annotations

import pytest

from dfine_bench.config.settings import DatasetSettings
from dfine_bench.data import ResolvedDataset, resolve_dataset


@pytest.fixture(scope="session")
def small_generated(tmp_path_factory: pytest.TempPathFactory) -> ResolvedDataset:
    """24 generated images of 240x320: every feature of the generator appears."""
    root = tmp_path_factory.mktemp("gen")
    cfg = DatasetSettings(kind="generated", num_images=24, image_size=[240, 320], seed=3)
    return resolve_dataset(cfg, root)
