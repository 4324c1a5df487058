"""evaluate/sampler_loops.py: the loops the speed benchmark times are the samplers they claim to be."""

from __future__ import annotations

import pytest
import torch

from ddim_lesson import CallCounter, NoiseSchedule, ddim_sample, ddim_timesteps, ddpm_sample
from ddim_lesson.evaluate.sampler_loops import (
    bare_calls,
    ddim_loop,
    ddpm_loop,
    diffusers_ddim_sample,
    diffusers_loop,
    sampler_cost_per_step,
    synced,
)
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser


def test_bare_calls_make_the_samplers_calls_and_ddim_loop_is_ddim_sample():
    torch.manual_seed(0)
    model, schedule = CallCounter(MLPDenoiser(MLPConfig(hidden=16, depth=1)).eval()), NoiseSchedule.linear(T=100)
    x = torch.randn(8, 2)
    bare_calls(model, schedule, x, 7)()
    assert model.calls == 7 and model.timesteps == ddim_timesteps(100, 7).tolist()
    assert torch.equal(ddim_loop(model, schedule, x, 7)(), ddim_sample(model, schedule, x, steps=7))


def test_ddpm_loop_is_ddpm_sample_over_all_steps():
    torch.manual_seed(0)
    model, schedule = CallCounter(MLPDenoiser(MLPConfig(hidden=16, depth=1)).eval()), NoiseSchedule.linear(T=30)
    x = torch.randn(4, 2)
    torch.manual_seed(5)
    got = ddpm_loop(model, schedule, x)()
    assert model.calls == 30
    torch.manual_seed(5)
    assert torch.equal(got, ddpm_sample(model, schedule, x))


def test_diffusers_loop_is_the_same_sampler_as_ours():
    pytest.importorskip("diffusers")
    torch.manual_seed(1)
    model, schedule = MLPDenoiser(MLPConfig(hidden=32, depth=2)).eval(), NoiseSchedule.linear()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(64, 2)
    for steps in (5, 50):
        ours, theirs = ddim_loop(model, schedule, x, steps)(), diffusers_loop(model, schedule, x, steps)()
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4), (ours - theirs).abs().max()
        # the timed copy is the loop notebook 06 prints, diffusers_ddim_sample, to the bit
        assert torch.equal(theirs, diffusers_ddim_sample(model, schedule, x, steps=steps, spacing="trailing"))


def test_diffusers_loop_refuses_a_schedule_it_cannot_be_given():
    pytest.importorskip("diffusers")
    with pytest.raises(ValueError, match="linear schedule, got 'cosine'"):
        diffusers_loop(MLPDenoiser(MLPConfig(hidden=8, depth=1)), NoiseSchedule.cosine(), torch.zeros(2, 2), 5)


def test_synced_leaves_cpu_work_unchanged():
    assert synced(ddim_loop, torch.device("cpu")) is ddim_loop


def test_the_samplers_own_work_per_step_is_positive_and_below_a_millisecond():
    # the stub model is free, so what remains is the loop's own work: > 0, and small for a 2-D batch
    own = sampler_cost_per_step(torch.randn(16, 2), NoiseSchedule.linear(T=100), 5, rounds=3)
    assert 0 < own < 1e-3, own
