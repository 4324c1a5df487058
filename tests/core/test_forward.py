"""The forward processes (core/forward.py): closed form vs Markov chain, the posterior by Bayes' rule, DDIM's
q_σ marginals.

Monte Carlo checks use a fixed seed and a tolerance of 5 standard errors: SE(mean) = √(v/n),
SE(variance) ≈ v·√(2/n) for Gaussian samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sigma, ddim_timesteps, q_posterior, q_sample, q_sigma_step, q_step
from ddim_lesson.core.forward import sigma_bar

N_MC = 20_000
X0 = 0.7  # a scalar data point, replicated N_MC times


def _assert_moments(x: torch.Tensor, mean: float, var: float, what: str) -> None:
    """Empirical mean/variance of a (n,) sample against the given values, within 5 SE."""
    n = x.numel()
    m, v = float(x.mean()), float(x.var())
    se_m, se_v = math.sqrt(var / n), var * math.sqrt(2.0 / n)
    assert abs(m - mean) < 5 * se_m + 1e-12, f"{what}: mean {m:.5f} vs {mean:.5f} (SE {se_m:.2g})"
    assert abs(v - var) < 5 * se_v + 1e-12, f"{what}: var {v:.5f} vs {var:.5f} (SE {se_v:.2g})"


def test_q_sample_equals_markov_chain(linear_schedule: NoiseSchedule) -> None:
    """T steps of q(x_t | x_{t-1}) (DDPM eq. 2) give the marginal that q_sample draws from (eq. 4)."""
    sch = linear_schedule
    g = torch.Generator().manual_seed(0)
    x = torch.full((N_MC,), X0, dtype=torch.float64)
    checkpoints = {0, 9, 99, 499, 999}
    for t in range(sch.T):
        x = q_step(x, t, sch, torch.randn(N_MC, generator=g, dtype=torch.float64))
        if t in checkpoints:
            # q_sample's own mean and standard deviation, read off with noise = 0 and noise = 1
            x0, tt = torch.full((1, 1), X0, dtype=torch.float64), torch.tensor([t])
            mean = float(q_sample(x0, tt, sch, noise=torch.zeros(1, 1, dtype=torch.float64)))
            std = float(q_sample(x0, tt, sch, noise=torch.ones(1, 1, dtype=torch.float64))) - mean
            _assert_moments(x, mean, std**2, f"chain vs q_sample at t={t}")
            abar = float(sch.alphas_cumprod[t])
            assert mean == pytest.approx(math.sqrt(abar) * X0, rel=1e-12)
            assert std == pytest.approx(math.sqrt(1 - abar), rel=1e-12)


def test_q_sample_draws(linear_schedule: NoiseSchedule) -> None:
    """q_sample's own random draws have mean √ᾱ_t x0 and variance 1 - ᾱ_t, per sample's own t."""
    sch = linear_schedule
    g = torch.Generator().manual_seed(1)
    for t in (0, 250, 999):
        x0 = torch.full((N_MC, 1), X0, dtype=torch.float64)
        xt = q_sample(x0, torch.full((N_MC,), t), sch, generator=g)
        abar = float(sch.alphas_cumprod[t])
        _assert_moments(xt[:, 0], math.sqrt(abar) * X0, 1 - abar, f"q_sample t={t}")
    # mixed timesteps in one batch pick their own ᾱ
    t = torch.tensor([0, 999])
    x = q_sample(torch.ones(2, 3, dtype=torch.float64), t, sch, noise=torch.zeros(2, 3, dtype=torch.float64))
    np.testing.assert_allclose(x[:, 0].numpy(), sch.alphas_cumprod[t].sqrt().numpy(), rtol=1e-12, atol=0)


def _bayes_posterior(x0: np.ndarray, xt: np.ndarray, abar_prev: np.ndarray, alpha: np.ndarray) -> tuple:
    """Product of two Gaussians in x_{t-1}: prior N(√ᾱ_{t-1} x0, 1-ᾱ_{t-1}), likelihood N(x_t; √α_t x, β_t)."""
    v0, beta = 1 - abar_prev, 1 - alpha
    prec = 1 / v0 + alpha / beta
    mean = (np.sqrt(abar_prev) * x0 / v0 + np.sqrt(alpha) * xt / beta) / prec
    return mean, 1 / prec


def test_q_posterior_matches_bayes_rule(linear_schedule: NoiseSchedule) -> None:
    sch = linear_schedule
    T = sch.T
    rng = np.random.default_rng(2)
    t = np.arange(1, T)  # t = 0 has a point-mass prior; checked below
    x0, xt = rng.normal(size=T - 1), rng.normal(size=T - 1)
    mean, var = q_posterior(torch.from_numpy(x0)[:, None], torch.from_numpy(xt)[:, None], torch.from_numpy(t), sch)
    abar = sch.alphas_cumprod.numpy()
    m_ref, v_ref = _bayes_posterior(x0, xt, abar[t - 1], 1 - sch.betas.numpy()[t])
    np.testing.assert_allclose(mean[:, 0].numpy(), m_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var[:, 0].numpy(), v_ref, rtol=1e-9, atol=0)
    # t = 0: ᾱ_{-1} = 1, so x_{-1} is x0 itself: mean x0, variance 0
    f64 = torch.float64
    m0, v0 = q_posterior(torch.tensor([[0.3]], dtype=f64), torch.tensor([[-2.0]], dtype=f64), torch.tensor([0]), sch)
    assert float(m0) == pytest.approx(0.3, rel=1e-9) and float(v0) == 0.0


@pytest.mark.parametrize("t", [1, 5, 100, 999])
def test_q_posterior_matches_numerical_integration(linear_schedule: NoiseSchedule, t: int) -> None:
    """Normalise prior × likelihood on a fine grid and take its moments: no Gaussian algebra at all."""
    sch = linear_schedule
    x0, xt = 0.4, -0.9
    a_prev, beta = float(sch.alphas_cumprod[t - 1]), float(sch.betas[t])
    m0, s0 = math.sqrt(a_prev) * x0, math.sqrt(1 - a_prev)  # prior of x_{t-1}
    ml, sl = xt / math.sqrt(1 - beta), math.sqrt(beta / (1 - beta))  # likelihood, as a function of x_{t-1}
    x = np.linspace(min(m0 - 12 * s0, ml - 12 * sl), max(m0 + 12 * s0, ml + 12 * sl), 200_001)
    logp = -0.5 * (x - m0) ** 2 / s0**2 - 0.5 * (xt - math.sqrt(1 - beta) * x) ** 2 / beta
    w = np.exp(logp - logp.max())
    mean = float((w * x).sum() / w.sum())
    var = float((w * (x - mean) ** 2).sum() / w.sum())
    f64 = torch.float64
    m, v = q_posterior(torch.tensor([[x0]], dtype=f64), torch.tensor([[xt]], dtype=f64), torch.tensor([t]), sch)
    assert float(m) == pytest.approx(mean, rel=1e-7, abs=1e-10)
    assert float(v) == pytest.approx(var, rel=1e-6)


@pytest.mark.parametrize("eta,spacing", [(0.0, "trailing"), (0.5, "quadratic"), (1.0, "trailing"), (1.0, "leading")])
def test_q_sigma_keeps_marginals(linear_schedule: NoiseSchedule, eta: float, spacing: str) -> None:
    """DDIM eq. 7: start from x_T ~ q(x_T|x0), run q_σ(x_{t_prev} | x_t, x0) down a sub-sequence, and
    every intermediate x_t is still distributed as q(x_t | x0) = N(√ᾱ_t x0, 1 - ᾱ_t) (paper's Lemma 1)."""
    sch = linear_schedule
    g = torch.Generator().manual_seed(3)
    ts = ddim_timesteps(sch.T, 10, spacing).tolist() + [-1]
    x0 = torch.full((N_MC,), X0, dtype=torch.float64)
    x = math.sqrt(sch.abar(ts[0])) * x0 + math.sqrt(1 - sch.abar(ts[0])) * torch.randn(
        N_MC, generator=g, dtype=torch.float64
    )
    big_sigma = False
    for t, t_prev in zip(ts[:-1], ts[1:]):
        a_t, a_prev = sch.abar(t), sch.abar(t_prev)
        sigma = ddim_sigma(a_t, a_prev, eta)
        big_sigma |= sigma**2 > 0.1 * (1 - a_prev)
        x = q_sigma_step(x, x0, a_t, a_prev, sigma, torch.randn(N_MC, generator=g, dtype=torch.float64))
        if t_prev >= 0:
            _assert_moments(x, math.sqrt(a_prev) * X0, 1 - a_prev, f"eta={eta} t={t_prev}")
    np.testing.assert_allclose(x.numpy(), x0.numpy(), rtol=0, atol=1e-12)  # the last step lands on x0 itself
    assert big_sigma == (eta > 0)  # with η > 0 the injected noise is a large share of the variance


def test_ddim_sigma_eta1_is_posterior_std_for_consecutive_steps(linear_schedule: NoiseSchedule) -> None:
    """σ_t(η=1) (eq. 16) with t_prev = t-1 equals √β̃_t, DDPM's posterior standard deviation."""
    sch = linear_schedule
    t = torch.arange(sch.T)
    _, var = q_posterior(torch.zeros(sch.T, 1).double(), torch.zeros(sch.T, 1).double(), t, sch)
    sig = torch.tensor([ddim_sigma(sch.abar(k), sch.abar(k - 1), 1.0) for k in range(sch.T)], dtype=torch.float64)
    np.testing.assert_allclose((sig**2).numpy(), var[:, 0].numpy(), rtol=1e-10, atol=1e-15)
    assert sig[0] == 0.0 and (sig[1:] > 0).all()
    # σ is linear in η, and η = 0 is deterministic
    assert ddim_sigma(sch.abar(500), sch.abar(499), 0.5) == pytest.approx(0.5 * float(sig[500]), rel=1e-12)
    assert ddim_sigma(sch.abar(500), sch.abar(499), 0.0) == 0.0
    # on a strided step, η = 1 is the posterior of that *step*, larger than β̃ of the single step t
    a_t, a_p = sch.abar(999), sch.abar(979)
    strided = ddim_sigma(a_t, a_p, 1.0) ** 2
    assert strided == pytest.approx((1 - a_p) / (1 - a_t) * (1 - a_t / a_p), rel=1e-12)
    assert strided > 10 * float(var[999])


def test_sigma_bar_is_one_over_root_snr_and_inverts_to_abar(linear_schedule: NoiseSchedule) -> None:
    """σ̄ = √(1-ᾱ)/√ᾱ: 1/√SNR, ᾱ = 1/(1+σ̄²), 0 at ᾱ = 1; a planted √(1-ᾱ) (no /√ᾱ) fails the same check."""
    sch = linear_schedule
    for t in (0, 1, 500, 999):
        a = sch.abar(t)
        assert sigma_bar(a) == pytest.approx(1 / math.sqrt(float(sch.snr[t])), rel=1e-12)
        assert 1 / (1 + sigma_bar(a) ** 2) == pytest.approx(a, rel=1e-12)
    assert sigma_bar(1.0) == 0.0 and sigma_bar(0.5) == pytest.approx(1.0, rel=1e-15)
    planted = math.sqrt(1 - sch.abar(999))
    assert planted != pytest.approx(1 / math.sqrt(float(sch.snr[999])), rel=0.01)
    for bad in (0.0, -0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"abar must be a finite number in \(0, 1\]"):
            sigma_bar(bad)  # type: ignore[arg-type]


def test_sigma_bar_takes_a_0d_tensor_and_numpy_floats_as_their_float(linear_schedule: NoiseSchedule) -> None:
    """A learner's dl.sigma_bar(schedule.alphas_cumprod[999]) (a 0-d tensor) gives the float's σ̄ (it was refused)."""
    abar = linear_schedule.alphas_cumprod
    for t in (0, 500, 999):
        a = float(abar[t])
        want = math.sqrt(1 - a) / math.sqrt(a)  # the closed form, on the float
        assert sigma_bar(abar[t]) == want and sigma_bar(np.float64(a)) == want
        a32 = float(np.float32(a))
        assert sigma_bar(abar[t].float()) == sigma_bar(np.float32(a)) == math.sqrt(1 - a32) / math.sqrt(a32)
    assert sigma_bar(torch.tensor(0.5)) == pytest.approx(1.0, rel=1e-15) and sigma_bar(np.array(1.0)) == 0.0


@pytest.mark.parametrize("bad", [
    torch.tensor(1.5), torch.tensor(0.0), np.float32(-0.2), np.float64("nan"),  # one number, out of (0, 1]
    torch.tensor([0.5]), torch.tensor([0.5, 0.4]), np.array([0.5, 0.4]),  # not one number
    torch.tensor(True), np.True_, True, "0.5",  # bools and strings, even where float() would read them as 1.0
])
def test_sigma_bar_refuses_what_is_not_one_number_in_range_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match=r"abar must be a finite number in \(0, 1\], got "):
        sigma_bar(bad)  # type: ignore[arg-type]
