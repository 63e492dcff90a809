"""Process facts that the datasets need: the epoch shared with DataLoader workers, rank and worker ids."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.data import get_worker_info


class SharedEpoch:
    """An epoch number that DataLoader worker processes read from shared memory.

    A dataset is copied into each worker when the workers start, so a plain
    attribute set later in the main process never reaches workers kept alive
    with ``persistent_workers=True``. A shared-memory tensor does, for both
    the fork and the spawn start methods.
    """

    def __init__(self, epoch: int = 0):
        self._value = torch.zeros((), dtype=torch.int64).share_memory_()
        self.set(epoch)

    def set(self, epoch: int) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self._value.fill_(epoch)

    def get(self) -> int:
        return int(self._value.item())


@dataclass(frozen=True)
class WorkerSlot:
    """The rank and DataLoader worker of a reading process."""

    rank: int
    world_size: int
    worker: int
    num_workers: int


def distributed_rank(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int]:
    """Return (rank, world size): the arguments if given, else ``torch.distributed``, else ``RANK``/``WORLD_SIZE``.

    Raises:
        ValueError: if only one of the two arguments is given or the rank is out of range.
    """
    if (rank is None) != (world_size is None):
        raise ValueError(f"pass both rank and world_size or neither (got rank={rank}, world_size={world_size})")
    if rank is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size) and world_size >= 1, got rank={rank}, "
                         f"world_size={world_size}")
    return rank, world_size


def current_slot(rank: Optional[int] = None, world_size: Optional[int] = None) -> WorkerSlot:
    """Return the rank and DataLoader worker of the calling process (worker 0 of 1 outside workers)."""
    rank, world_size = distributed_rank(rank, world_size)
    info = get_worker_info()
    worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
    return WorkerSlot(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)
