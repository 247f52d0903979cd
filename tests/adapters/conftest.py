"""Fixtures for the adapter tests: small images, a fake Hugging Face cache, thread limits."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The machine's cores are shared: keep each test on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def images() -> list[np.ndarray]:
    """Three HWC uint8 RGB images of different sizes and aspect ratios."""
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, size=shape, dtype=np.uint8)
        for shape in ((96, 160, 3), (150, 100, 3), (64, 64, 3))
    ]


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache in tmp, used offline (as on this machine)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def cache_snapshot(hf_cache: Path) -> Callable[[str, Path], Path]:
    """Put a directory into the fake hub cache as ``hub_id``'s snapshot; returns the snapshot dir."""
    return lambda hub_id, source_dir: _put_in_hf_cache(hf_cache, hub_id, source_dir)


def _put_in_hf_cache(cache: Path, hub_id: str, source_dir: Path, commit: str = "a" * 40) -> Path:
    """Lay ``source_dir``'s files out as the hub cache stores a downloaded snapshot of ``hub_id``."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in source_dir.iterdir():
        shutil.copy(file, snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="session")
def official_dfine_n_keys() -> dict[str, list[int]]:
    """Key names and shapes of the official D-FINE-N state dict (recorded from Peterande/D-FINE)."""
    return json.loads((DATA / "dfine_n_official_keys.json").read_text())["keys"]
