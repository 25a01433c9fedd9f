"""torch.distributed set-up shared by training: torchrun's environment first, the recipe's flags second."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(rank: int = 0, world_size: int = 1, dist_url: str = "tcp://localhost:23456",
                     backend: str | None = None, group_name: str = "group_name",
                     cpu: bool = False) -> DistInfo:
    """Joins the process group when there is more than one process.

    torchrun (and `python -m multiproc`) export RANK/LOCAL_RANK/WORLD_SIZE/MASTER_ADDR; old scripts pass
    `--rank/--world-size/--dist-url` instead, which are used when the environment says nothing.
    """
    if "WORLD_SIZE" in os.environ:
        world_size = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", rank))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and not cpu
    if use_cuda:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        if backend is None or (backend == "nccl" and not use_cuda):
            backend = "nccl" if use_cuda else "gloo"
        init_method = "env://" if "MASTER_ADDR" in os.environ else dist_url
        dist.init_process_group(backend=backend, init_method=init_method, world_size=world_size,
                                rank=rank, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks in place (identity on one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (a one-element list on one process)."""
    if dist.is_available() and dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, obj)
        return gathered
    return [obj]


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) to every rank. DDP does it at the start of each
    training forward, so after the last step every rank holds statistics updated by its own batch."""
    if dist.is_available() and dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
