"""Fixtures of the profiling tests: one thread, and the toy adapter of ``profiling_toys``."""

from __future__ import annotations

import pytest
import torch
from profiling_toys import ToyAdapter


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def toy() -> ToyAdapter:
    return ToyAdapter()
