"""PyTorch's own distributed engine, the way ``torchrun`` sets it up.

``torchrun --nproc_per_node=N -m dalib ...`` starts N processes and gives each one
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in its environment. :func:`init_distributed`
joins the process group only when ``WORLD_SIZE > 1`` (gloo on CPU, nccl on CUDA), so the
same code runs as a plain single process. Rank 0 logs and writes checkpoints; everybody
else computes and waits at :func:`barrier` where files must exist before they go on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dalib.config import get_device


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size`` processes, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes shared files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from err


def single_process(device: str | torch.device) -> DistInfo:
    """Rank 0 of 1 on ``device``, whatever the environment: a run of one process inside a
    torchrun job (rank 0 training a stand-in while the others wait) joins no collective."""
    return DistInfo(0, 1, 0, torch.device(device))


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` (once); return this process's info.

    On CUDA each process takes ``cuda:LOCAL_RANK`` and the nccl backend; on CPU gloo.
    Without torchrun (no ``WORLD_SIZE`` or 1) nothing is initialised: rank 0 of 1.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    chosen = torch.device(device) if device is not None else get_device()
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", local_rank if world_size > 1 else 0)
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, chosen)


def barrier() -> None:
    """Wait for every process of the group (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (``value`` itself in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()


def shard(items: list, info: DistInfo) -> list:
    """This rank's share of ``items``: ``items[rank::world_size]`` (disjoint, covers all)."""
    return items[info.rank :: info.world_size]
