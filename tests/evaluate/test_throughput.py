"""evaluate/throughput.py: images/s of sampling and of training steps, on the CPU (the code path a GPU takes)."""

from __future__ import annotations

import math

import torch
from conftest import CountedNet

from ddim_lesson import NoiseSchedule
from ddim_lesson.core.losses import diffusion_loss
from ddim_lesson.evaluate.throughput import sampling_throughput, synchronize, training_throughput
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser, UNetConfig


def test_sampling_throughput_runs_a_warmup_and_a_timed_sample_at_the_batch():
    model = CountedNet(MLPDenoiser(MLPConfig(hidden=8, depth=1)).eval())
    ips = sampling_throughput(model, NoiseSchedule.linear(T=100), torch.device("cpu"), batch=16, steps=3)
    assert model.calls == 2 * 3 and [t.shape[0] for t in model.counter.ts] == [16] * 6  # every call at the batch
    assert math.isfinite(ips) and ips > 0


def test_training_throughput_trains_a_small_unet_on_the_cpu():
    losses = []

    def loss(model, x0, schedule, g):
        out = diffusion_loss(model, x0, schedule, g)
        losses.append((tuple(x0.shape), out.item()))
        return out

    ips = training_throughput(torch.device("cpu"), loss, bf16=False, steps=2, batch=3,
                              config=UNetConfig(base_channels=8, channel_mults=(1, 2)))
    assert math.isfinite(ips) and ips > 0
    assert len(losses) == 5 + 2 and {shape for shape, _ in losses} == {(3, 1, 28, 28)}  # 5 untimed, 2 timed
    assert all(math.isfinite(v) for _, v in losses)


def test_synchronize_waits_on_cuda_and_mps_once_and_on_nothing_for_the_cpu(monkeypatch):
    """Each device's own wait is called exactly once for it (the CUDA one with the device); none for the CPU."""
    waits = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waits.append(("cuda", device)))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waits.append(("mps", None)))
    assert synchronize(torch.device("cpu")) is None and waits == []
    cuda1 = torch.device("cuda", 1)
    synchronize(cuda1)
    assert waits == [("cuda", cuda1)]
    synchronize(torch.device("mps"))
    assert waits == [("cuda", cuda1), ("mps", None)]
