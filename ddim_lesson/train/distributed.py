"""Several GPUs through torchrun (PyTorch DDP): joining the process group, the noise-generator states
of every rank (so a resumed run replays the same noise), and the mean loss over ranks."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group that torchrun set up (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def gather_rng_states(g: torch.Generator, world: int) -> list[torch.Tensor]:
    """Every rank's noise-generator state, so a resumed DDP run replays the same noise."""
    if world == 1:
        return [g.get_state()]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, g.get_state())
    return states


def mean_over_ranks(loss: torch.Tensor, world: int) -> float:
    if world > 1:
        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= world
    return float(loss)
