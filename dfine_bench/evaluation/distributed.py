"""Running one evaluation across processes under ``torchrun``: rank, world size, sharding.

Images are sharded round-robin over ranks; every rank streams its own part file into the
shared predictions folder, and rank 0 evaluates once all ranks are done. The predictions
folder must be visible to every rank (one node, or a shared file system).
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group (nccl on CUDA, gloo on CPU) if needed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if world_size_from_env() <= 1 or not dist.is_available():
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def rank_and_world() -> tuple[int, int]:
    """The current (rank, world size) without initialising anything."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (a no-op in a single process)."""
    if rank_and_world()[1] <= 1:
        return obj
    holder: list[Any] = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def shutdown_distributed(*, wait: bool = True) -> None:
    """Leave the process group cleanly at the end of a run (a no-op in a single process).

    Without it a rank that finishes first exits with gloo's threads still alive and aborts
    ("terminate called without an active exception"), which torchrun reports as a failed run.
    ``wait`` first waits for every rank (only on success: a rank that failed would leave the
    others waiting at the barrier).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait:
        dist.barrier()
    dist.destroy_process_group()


def shard(items: list[T], rank: int, world: int) -> list[T]:
    """Round-robin share of ``items`` for ``rank``: every item lands on exactly one rank."""
    return items[rank::world]
