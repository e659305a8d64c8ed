"""Process-group setup for `torchrun` (one process per GPU, or gloo processes on CPU) and FSDP2 sharding."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto", timeout_minutes: float = 10) -> DistributedContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); a plain run is rank 0 of 1.
    NCCL on GPUs, gloo on CPU. A collective that waits longer than `timeout_minutes` fails the job instead
    of hanging it."""
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        torch_device = torch.device("cuda", local_rank if torch_device.index is None else torch_device.index)
        torch.cuda.set_device(torch_device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return DistributedContext(rank, world_size, local_rank, torch_device)


def teardown() -> None:
    """Leave the process group. FSDP2's modules hold process groups (and their last collectives' work) in
    reference cycles that outlive the run: collected first, while the groups and the interpreter are alive;
    freed instead by the interpreter's exit, a gloo group can abort the process ("terminate called without
    an active exception")."""
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


def shard_model(model: nn.Module, param_dtype: torch.dtype | None) -> None:
    """FSDP2: each transformer block is its own all-gather unit, then the root (embeddings, norm, output).
    With a `param_dtype` (bf16 or fp16 on GPU) parameters are gathered and computed in it and gradients
    reduced in float32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32) if param_dtype else None
    kwargs = {"mp_policy": policy} if policy else {}
    for index, layer in enumerate(model.layers):
        # The last block's parameters are needed right away by backward: keep them gathered.
        fully_shard(layer, reshard_after_forward=index < len(model.layers) - 1, **kwargs)
    fully_shard(model, **kwargs)


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    return all_reduce_sum(value) / dist.get_world_size() if dist.is_initialized() else value


def all_gather_objects(obj: object) -> list:
    if not dist.is_initialized():
        return [obj]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
