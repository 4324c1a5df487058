"""The reference solutions and checkers of three exercise modules, imported from the modules themselves:
course/exercises/ddpm (q_sample, the ancestral step), course/exercises/ddim (the DDIM step) and
course/exercises/latents (slerp, the inversion step). Each reference equals its closed form or the library's
function, its checker passes it, and the checker fails a planted mistake a learner makes."""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson.core.inversion import invert_step, lerp, slerp
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.core.updates import ddim_step
from ddim_lesson.course.exercises import ddim as ex_ddim
from ddim_lesson.course.exercises import ddpm as ex_ddpm
from ddim_lesson.course.exercises import latents as ex_latents
from ddim_lesson.course.exercises.harness import CheckFailed

SCHED = NoiseSchedule.linear(1000)
G = torch.Generator().manual_seed(20)


def test_q_sample_reference_is_ddpm_eq_4_and_its_checker_fails_a_missing_root() -> None:
    x0, noise, t = torch.randn(4, 1, 3, 3, generator=G), torch.randn(4, 1, 3, 3, generator=G), torch.tensor([0, 9,
                                                                                                        500, 999])
    abar = SCHED.alphas_cumprod[t].view(-1, 1, 1, 1)  # the schedule's dtype, as the reference computes it
    want = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    torch.testing.assert_close(ex_ddpm.reference_q_sample(x0, t, SCHED, noise), want)
    assert ex_ddpm.check_q_sample(ex_ddpm.reference_q_sample)

    def no_root(x0, t, schedule, noise):  # the planted mistake: ᾱ where √ᾱ belongs
        a = schedule.alphas_cumprod[t].view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        return a * x0 + (1 - a) * noise

    with pytest.raises(CheckFailed):
        ex_ddpm.check_q_sample(no_root)


def test_ddpm_step_reference_passes_and_beta_for_beta_tilde_fails() -> None:
    assert ex_ddpm.check_ddpm_step(ex_ddpm.reference_ddpm_step)

    def beta_variance(x_t, eps, t, schedule, noise):  # σ_t² = β_t (DDPM's other choice) where β̃_t is asked for
        beta = float(schedule.betas[t])
        abar_t = float(schedule.alphas_cumprod[t])
        return (x_t - beta / math.sqrt(1 - abar_t) * eps) / math.sqrt(1 - beta) + math.sqrt(beta) * noise

    with pytest.raises(CheckFailed):
        ex_ddpm.check_ddpm_step(beta_variance)


@pytest.mark.parametrize(("abar_t", "abar_prev", "eta"), [(0.5, 0.9, 0.0), (0.02, 0.3, 1.0), (0.9, 1.0, 0.0)])
def test_ddim_step_reference_is_the_librarys_step(abar_t: float, abar_prev: float, eta: float) -> None:
    x_t, eps, noise = (torch.randn(2, 1, 3, 3, generator=G, dtype=torch.float64) for _ in range(3))
    got = ex_ddim.reference_ddim_step(x_t, eps, abar_t, abar_prev, eta, noise)
    want = ddim_step(x_t, eps, abar_t, abar_prev, eta, noise)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_ddim_step_checker_passes_the_reference_and_fails_a_direction_without_sigma() -> None:
    assert ex_ddim.check_ddim_step(ex_ddim.reference_ddim_step)

    def no_sigma_in_direction(x_t, eps, abar_t, abar_prev, eta, noise):  # √(1-ᾱ_prev) ε, forgetting -σ²
        x0 = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t)) * math.sqrt(1 - abar_t / abar_prev)
        return math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps + sigma * noise, x0

    with pytest.raises(CheckFailed):
        ex_ddim.check_ddim_step(no_sigma_in_direction)


def test_slerp_reference_keeps_the_norm_and_its_checker_fails_lerp() -> None:
    z0 = torch.randn(3, 64, generator=G, dtype=torch.float64)
    z1 = torch.randn(3, 64, generator=G, dtype=torch.float64)
    z1 = z1 - (z1 * z0).sum(-1, keepdim=True) / (z0 * z0).sum(-1, keepdim=True) * z0  # orthogonal to z0
    z1 = z1 * z0.norm(dim=-1, keepdim=True) / z1.norm(dim=-1, keepdim=True)  # and as long
    for a in (0.25, 0.5):
        got = ex_latents.reference_slerp(z0, z1, a)
        torch.testing.assert_close(got, math.cos(a * math.pi / 2) * z0 + math.sin(a * math.pi / 2) * z1)
        torch.testing.assert_close(got, slerp(z0, z1, a))
    assert ex_latents.check_slerp(ex_latents.reference_slerp)
    with pytest.raises(CheckFailed):
        ex_latents.check_slerp(lerp)  # the planted mistake the notebook warns of: lerp shrinks the norm


def test_invert_step_reference_is_the_librarys_and_a_swapped_one_fails() -> None:
    x, eps = torch.randn(2, 4, generator=G, dtype=torch.float64), torch.randn(2, 4, generator=G, dtype=torch.float64)
    for abar_from, abar_to in ex_latents.INVERT_CASES:
        torch.testing.assert_close(ex_latents.reference_invert_step(x, eps, abar_from, abar_to),
                                   invert_step(x, eps, abar_from, abar_to))
    assert ex_latents.check_invert_step(ex_latents.reference_invert_step)
    with pytest.raises(CheckFailed):
        ex_latents.check_invert_step(lambda x, e, a, b: ex_latents.reference_invert_step(x, e, b, a))
