"""torchrun support: process group, rank helpers, reductions.

Launched by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT), training runs one process per GPU (NCCL) or per CPU slot (gloo);
a plain ``segment train`` is a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (picks the GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group if launched by torchrun; else a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            from segment.errors import UserError

            raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:  # one GPU per torchrun process
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        count = torch.cuda.device_count()
        if device.index >= count:
            # Otherwise torch.cuda.set_device fails with a bare "invalid device ordinal"
            # (seen with torchrun --nproc_per_node 2 on a one-GPU machine).
            from segment.errors import UserError

            local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            hint = (f"torchrun started {local} processes on this machine, one per GPU: use --nproc_per_node {count} "
                    "or fewer" if local > 1 else f"choose cuda:0..cuda:{count - 1}")
            raise UserError(f"{device} does not exist: this machine has {count} GPU(s); {hint}")
    return device


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over ranks (in place; identity in a world of one)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def param_divergence(model: torch.nn.Module, info: DistInfo) -> float:
    """Largest |difference| between this run's parameters on any rank and on rank 0 (0.0 = in sync).

    DDP keeps replicas identical by construction (same init broadcast, same
    averaged gradients); this checks it at the end of a run, cheaply.
    """
    if not info.enabled:
        return 0.0
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = (flat - reference).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())
