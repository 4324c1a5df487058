"""DDIM's Theorem 1 weights γ_t against DDPM's closed form at η = 1 and the KL they stand for, with planted bugs.

(The training losses themselves are tested by tests/evaluate/test_loss_from_core.py and the training tests.)
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from ddim_lesson import NoiseSchedule, ddim_sigma
from ddim_lesson.core.losses import theorem1_weights


def _kl_ratio(schedule: NoiseSchedule, eta: float, t: int, gamma: torch.Tensor, seed: int) -> float:
    """KL(q_σ(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)) / (γ_t ‖ε_θ - ε‖²) on random vectors, from eqs. 7 and 9."""
    g = torch.Generator().manual_seed(seed)
    x0, eps, eps_th = (torch.randn(16, generator=g, dtype=torch.float64) for _ in range(3))
    a_t, a_p = schedule.abar(t), schedule.abar(t - 1)
    s = ddim_sigma(a_t, a_p, eta)
    x_t = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * eps  # a draw from q(x_t | x_0)
    f = (x_t - math.sqrt(1 - a_t) * eps_th) / math.sqrt(a_t)  # the model's x0 (eq. 9)

    def mean(x0_: torch.Tensor) -> torch.Tensor:  # eq. 7's mean of q_σ(x_{t-1} | x_t, x_0)
        return math.sqrt(a_p) * x0_ + math.sqrt(1 - a_p - s**2) * (x_t - math.sqrt(a_t) * x0_) / math.sqrt(1 - a_t)

    kl = kl_divergence(Normal(mean(x0), s), Normal(mean(f), s)).sum()
    return float(kl) / (float(gamma[t - 1]) * float((eps_th - eps).square().sum()))


def test_eta_one_gives_ddpm_weights(linear_schedule: NoiseSchedule) -> None:
    sch = linear_schedule
    gamma, sig2 = theorem1_weights(sch.alphas_cumprod, 1.0)
    a_t, a_p, beta = sch.alphas_cumprod[1:], sch.alphas_cumprod[:-1], sch.betas[1:]
    beta_tilde = (1 - a_p) / (1 - a_t) * beta  # DDPM's posterior variance
    ddpm = beta**2 / (2 * beta_tilde * (1 - beta) * (1 - a_t))  # DDPM eq. 8 -> eq. 12's weights, code t = 1..T-1
    assert gamma.shape == sig2.shape == (sch.T - 1,) and gamma.dtype == torch.float64
    torch.testing.assert_close(gamma, ddpm, rtol=1e-9, atol=0)
    torch.testing.assert_close(sig2, beta_tilde, rtol=1e-9, atol=0)


@pytest.mark.parametrize("eta", [0.2, 0.6, 1.0])
def test_weights_are_the_kl_per_unit_of_squared_eps_error(linear_schedule: NoiseSchedule, eta: float) -> None:
    gamma, _ = theorem1_weights(linear_schedule.alphas_cumprod, eta)
    for t in (1, 10, 500, 999):
        assert _kl_ratio(linear_schedule, eta, t, gamma, seed=t) == pytest.approx(1.0, abs=1e-8)


def test_planted_bugs_fail_the_kl_check(linear_schedule: NoiseSchedule) -> None:
    gamma, sig2 = theorem1_weights(linear_schedule.alphas_cumprod, 0.5)
    a_t = linear_schedule.alphas_cumprod[1:]
    sigma_not_squared = gamma * sig2 / sig2.sqrt()  # γ with σ in the denominator in place of σ²
    no_abar = gamma * a_t  # the 1/ᾱ_t of x0 - f_θ = √(1-ᾱ_t)/√ᾱ_t (ε_θ - ε) forgotten
    for wrong in (sigma_not_squared, no_abar):
        assert abs(_kl_ratio(linear_schedule, 0.5, 500, wrong, seed=1) - 1) > 0.05


def test_weights_change_with_eta_and_the_cosine_schedule_works() -> None:
    cos = NoiseSchedule.cosine(200)
    g_low, _ = theorem1_weights(cos.alphas_cumprod, 0.2)
    g_one, _ = theorem1_weights(cos.alphas_cumprod, 1.0)
    assert torch.isfinite(g_low).all() and (g_low > 0).all()
    ratio = g_low / g_one
    assert float(ratio.max() / ratio.min()) > 1.5  # not a constant factor: σ changes the weights' shape too


@pytest.mark.parametrize("abar, eta, match", [
    (torch.linspace(0.99, 0.01, 10, dtype=torch.float64), 0.0, "eta must be a finite number in"),
    (torch.linspace(0.99, 0.01, 10, dtype=torch.float64), 1.5, "eta must be a finite number in"),
    (torch.linspace(0.01, 0.99, 10, dtype=torch.float64), 0.5, "decrease strictly"),
    (torch.linspace(1.0, 0.01, 10, dtype=torch.float64), 0.5, r"\(0, 1\)"),
    (torch.ones(3, 3), 0.5, r"\(T,\)"),
    (torch.tensor([0.5]), 0.5, "T >= 2"),
])
def test_bad_input_is_refused_naming_the_range(abar: torch.Tensor, eta: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        theorem1_weights(abar, eta)


def test_the_missing_last_step_has_sigma_zero_for_every_eta_as_the_docstring_says(
        linear_schedule: NoiseSchedule) -> None:
    """Code t = 0 (Theorem 1's t = 1, the step to ᾱ = 1) is left out: eq. 16 gives σ = 0 there for every η,
    while the steps kept have σ > 0; the docstring says so (it used to blame η = 0 alone)."""
    a0 = linear_schedule.abar(0)
    for eta in (0.2, 0.6, 1.0):
        _, sig2 = theorem1_weights(linear_schedule.alphas_cumprod, eta)
        assert ddim_sigma(a0, 1.0, eta) == 0.0 and bool((sig2 > 0).all())
        assert sig2.shape == (linear_schedule.T - 1,)
    doc = " ".join(theorem1_weights.__doc__.split())
    assert "for every η it is the last step, code t = 0 -> ᾱ = 1 (Theorem 1's t = 1)" in doc
    assert "code t = 0 is missing" in doc
