"""The checker of notebook 04's σ-per-step exercise (course/exercises/ddim.py), against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sigma, ddim_timesteps
from ddim_lesson.course.exercises import check_step_sigmas, reference_step_sigmas


def not_yet(*_):
    raise NotImplementedError

# -- σ per step ----------------------------------------------------------------------------------
def test_step_sigmas_reference_matches_closed_forms():
    s = NoiseSchedule.linear(1000)
    ts = ddim_timesteps(1000, 1000, "trailing")  # all T steps: η = 1 gives DDPM's √β̃_t
    sig = reference_step_sigmas(s, ts, 1.0)
    abar = s.alphas_cumprod
    abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    beta_tilde = (1 - abar_prev) / (1 - abar) * s.betas  # (T,) indexed by t
    torch.testing.assert_close(sig, beta_tilde[ts].sqrt())
    ts10 = ddim_timesteps(1000, 10, "trailing")
    sig10 = reference_step_sigmas(s, ts10, 0.5)
    assert sig10[-1] == 0  # the last step goes to ᾱ = 1
    assert math.isclose(float(sig10[0]), ddim_sigma(s.abar(999), s.abar(899), 0.5), rel_tol=1e-12)


def test_check_step_sigmas():
    assert check_step_sigmas(reference_step_sigmas) is True
    assert check_step_sigmas(not_yet) is False


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, ts, eta: reference_step_sigmas(s, ts, eta) ** 2, "variances"),
    (lambda s, ts, eta: torch.cat([reference_step_sigmas(s, ts, eta)[:-1],
                                   torch.full((1,), 0.01, dtype=torch.float64)]), "except the last"),
    (lambda s, ts, eta: reference_step_sigmas(s, ts, eta)[:-1], "shape"),
])
def test_check_step_sigmas_wrong_answers(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        check_step_sigmas(wrong)


def test_check_step_sigmas_catches_one_step_previous():
    def consecutive(s, ts, eta):  # ᾱ_(t-1) instead of the next timestep of the sequence
        abar = torch.cat([torch.ones(1, dtype=torch.float64), s.alphas_cumprod])
        a_t, a_prev = abar[ts + 1], abar[ts]
        return eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()

    with pytest.raises(AssertionError, match="timesteps\\[i\\+1\\]"):
        check_step_sigmas(consecutive)
