"""Throughput on an accelerator, in images per second: DDIM sampling at a large batch and training steps,
each in fp32, bf16 autocast, and optionally torch.compile.

    sampling_throughput(model, schedule, torch.device("cuda"), bf16=True)  # -> images/s
    training_throughput(torch.device("cuda"), bf16=True)                   # -> images/s

A training step computes ``core.losses.diffusion_loss`` (the loss the training loop minimises, from the
maths layer) unless another loss is passed.

Both run on any device (the tests use the CPU); each timed block ends with the device's synchronize, so an
asynchronous GPU is timed when its work is done, not when it was queued.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..core.checks import check_int
from ..core.losses import diffusion_loss
from ..core.samplers import ddim_sample
from ..core.schedules import NoiseSchedule
from ..nets.models import UNet, UNetConfig
from ..store.instruments import Stopwatch
from .generate import sample_shape

Loss = Callable[[nn.Module, torch.Tensor, NoiseSchedule, torch.Generator], torch.Tensor]


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA, MPS); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _autocast(device: torch.device, bf16: bool) -> torch.autocast:
    return torch.autocast(device.type, torch.bfloat16, enabled=bf16)


def sampling_throughput(model: nn.Module, schedule: NoiseSchedule, device: torch.device, *, batch: int = 1024,
                        steps: int = 50, bf16: bool = False) -> float:
    """Images/s of ``ddim_sample`` with ``steps`` steps on x_T of shape (batch, *sample_shape(model)).

    ``model`` must already be on ``device``; one untimed run first (it also compiles a compiled model).
    """
    batch = check_int("batch", batch, 1)
    x = torch.randn(batch, *sample_shape(getattr(model, "_orig_mod", model)), device=device)  # (B, C, H, W)

    def sample() -> None:
        with _autocast(device, bf16):
            ddim_sample(model, schedule, x, steps=steps)
        synchronize(device)

    sample()  # warmup (and compile)
    with Stopwatch() as sw:
        sample()
    return batch / sw.seconds


def training_throughput(device: torch.device, loss_fn: Loss | None = None, *, bf16: bool, compile_: bool = False,
                        steps: int = 30, batch: int = 128, config: UNetConfig | None = None) -> float:
    """Images/s of training steps (``loss_fn(model, x0, schedule, generator)``, backward, AdamW) of a fresh
    UNet, x0 of shape (batch, C, H, W). ``loss_fn`` None: ``core.losses.diffusion_loss``.

    As in the training loop: channels_last, bf16 autocast when asked, a CPU generator for t and ε.
    Five untimed steps first, then ``steps`` timed ones.
    """
    steps, batch = check_int("steps", steps, 1), check_int("batch", batch, 1)
    loss_fn = diffusion_loss if loss_fn is None else loss_fn
    model = UNet(config or UNetConfig()).to(device).to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sched, g = NoiseSchedule.linear(), torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, *sample_shape(model), device=device)  # (B, C, H, W)
    x0 = x0.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with _autocast(device, bf16):
            loss = loss_fn(fwd, x0, sched, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    synchronize(device)
    with Stopwatch() as sw:
        for _ in range(steps):
            step()
        synchronize(device)
    return steps * batch / sw.seconds
