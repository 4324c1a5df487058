"""DDIM inversion (x0 -> x_T -> x0) and the interpolation of Gaussian latents (slerp vs lerp): core/inversion.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddim_lesson import SPACINGS, NoiseSchedule, ddim_invert, ddim_sample, ddim_timesteps, lerp, slerp

F64 = torch.float64


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# -- inversion ------------------------------------------------------------------------------------------


def _roundtrip_errors(model, sch: NoiseSchedule, x0: torch.Tensor, spacing: str, reduce=torch.max) -> list[float]:
    """Reduced |ddim_sample(ddim_invert(x0)) - x0| for S = 10, 50, 200."""
    errs = []
    for S in (10, 50, 200):
        x_T = ddim_invert(model, sch, x0, steps=S, spacing=spacing)
        rec = ddim_sample(model, sch, x_T, steps=S, spacing=spacing, clip_x0=False)
        errs.append(float(reduce((rec - x0).abs())))
    return errs


@pytest.mark.parametrize("spacing", SPACINGS)
def test_inversion_reconstructs_gaussian_data(gaussian, linear_schedule: NoiseSchedule, spacing: str) -> None:
    """ddim_sample(ddim_invert(x0)) -> x0 with the exact Gaussian ε, error shrinking ~1/S.

    Measured max |error| over 64 samples (trailing): S=10: 0.61, S=50: 0.17, S=200: 0.044
    (leading 0.60/0.17/0.044, linspace 0.64/0.17/0.044, quadratic 0.64/0.19/0.050, logsnr 0.73/0.28/0.074:
    uniform in log-SNR puts few steps at high noise, where this data's flow bends most).
    """
    x0 = gaussian.mu + gaussian.s * _randn(64, 3, seed=0)
    errs = _roundtrip_errors(gaussian, linear_schedule, x0, spacing)
    assert errs[1] < 0.4 * errs[0] and errs[2] < 0.4 * errs[1], errs
    assert errs[2] < (0.09 if spacing == "logsnr" else 0.06), errs


def test_inversion_reaches_the_noise_distribution(gaussian, linear_schedule: NoiseSchedule) -> None:
    """Inverting data gives latents close to the ODE's exact encoding z = (x_t - √ᾱ mu)/√(ᾱ s² + 1 - ᾱ).

    At ᾱ_T ≈ 4e-5 that is ≈ N(0, 1); the exact encoder is the inverse of the exact decoder x0 = mu + s·z.
    """
    x0 = gaussian.mu + gaussian.s * _randn(4096, 3, seed=1)
    x_T = ddim_invert(gaussian, linear_schedule, x0, steps=1000)
    abar_T = float(linear_schedule.alphas_cumprod[-1])
    z = (x0 - gaussian.mu) / gaussian.s  # exact: the ODE keeps the standard score
    exact = math.sqrt(abar_T) * gaussian.mu + torch.sqrt(abar_T * gaussian.s**2 + 1 - abar_T) * z
    assert float((x_T - exact).abs().max()) < 0.05
    assert ((x_T.var(0) - 1).abs() < 0.1).all() and (x_T.mean(0).abs() < 0.1).all()


class MixtureEps:
    """Exact E[ε | x_t] for 1-D two-component Gaussian-mixture data (per dimension): a nonlinear ideal model.

    Each component k gives E[ε | x_t, k] = √(1-ᾱ)(x_t - √ᾱ m_k)/v_k, v_k = ᾱ s_k² + 1 - ᾱ, weighted by
    the posterior responsibility of k, which is ∝ π_k N(x_t; √ᾱ m_k, v_k).
    """

    def __init__(self, sch: NoiseSchedule) -> None:
        self.abar = sch.alphas_cumprod
        self.m, self.s, self.pi = (torch.tensor(v, dtype=F64) for v in ([-0.6, 0.7], [0.15, 0.25], [0.4, 0.6]))

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].view(-1, 1, 1)  # (B, 1, 1)
        x = x_t.unsqueeze(-1)  # (B, D, 1) against components (K,)
        v = a * self.s**2 + 1 - a  # (B, 1, K)
        logw = torch.log(self.pi) - 0.5 * torch.log(v) - 0.5 * (x - a.sqrt() * self.m) ** 2 / v
        w = torch.softmax(logw, dim=-1)  # (B, D, K)
        return (w * (1 - a).sqrt() * (x - a.sqrt() * self.m) / v).sum(-1)  # (B, D)

    def sample(self, n: int, d: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        k = (torch.rand(n, d, generator=g, dtype=F64) < self.pi[1]).long()
        return self.m[k] + self.s[k] * torch.randn(n, d, generator=g, dtype=F64)


def test_mixture_predictor_is_conditional_mean(linear_schedule: NoiseSchedule) -> None:
    """E[(ε - f(x_t))·g(x_t)] = 0 for test functions g: f is the conditional mean (Monte Carlo, 5 SE)."""
    model = MixtureEps(linear_schedule)
    n = 200_000
    x0 = model.sample(n, 1, seed=20)[:, 0]
    eps = _randn(n, seed=21)
    for t in (30, 300):
        a = float(linear_schedule.alphas_cumprod[t])
        x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
        r = eps - model(x_t[:, None], torch.full((n,), t))[:, 0]
        for g in (torch.ones_like(x_t), x_t, x_t**2, torch.tanh(4 * x_t)):
            prod = r * g
            assert abs(float(prod.mean())) < 5 * float(prod.std()) / math.sqrt(n), (t, float(prod.mean()))


def test_inversion_with_nonlinear_exact_model(linear_schedule: NoiseSchedule) -> None:
    """The round trip also converges for a nonlinear ε: the exact predictor of a Gaussian mixture.

    Measured |error| over 64×2 values, median: S=10: 0.052, 50: 0.011, 200: 0.0030 (1000: 0.0006).
    The worst point (x0 = -0.107, between the two modes, where the flow is steep) converges slowly:
    max 0.29, 0.25, 0.14 (1000: 0.05).
    """
    model = MixtureEps(linear_schedule)
    x0 = model.sample(64, 2, seed=2)
    med = _roundtrip_errors(model, linear_schedule, x0, "trailing", reduce=torch.median)
    assert med[1] < 0.4 * med[0] and med[2] < 0.4 * med[1], med
    assert med[2] < 0.005, med
    worst = _roundtrip_errors(model, linear_schedule, x0, "trailing")
    assert worst[0] > worst[1] > worst[2], worst


def test_inversion_asks_the_model_at_sampling_timesteps(counting, smooth_model, linear_schedule) -> None:
    """S model calls, at the sampler's timesteps in ascending order, each with a (B,) LongTensor."""
    x0 = _randn(3, 4, seed=3)
    for spacing in SPACINGS:
        for S in (1, 7, 50, 1000):
            m = counting(smooth_model)
            ddim_invert(m, linear_schedule, x0, steps=S, spacing=spacing)
            assert m.calls == S
            assert all(t.dtype == torch.long and t.shape == (3,) for t in m.ts)
            assert [int(t[0]) for t in m.ts] == ddim_timesteps(1000, S, spacing).flip(0).tolist()


def test_inversion_is_exact_with_the_true_noise(linear_schedule: NoiseSchedule) -> None:
    """If ε(x, t) is the same ε for every t (a model that knows x0 and ε), inversion gives √ᾱ_T x0 + √(1-ᾱ_T) ε."""
    x0, eps = _randn(4, 3, seed=4), _randn(4, 3, seed=5)
    abar = linear_schedule.alphas_cumprod

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return eps

    for S in (1, 20):
        x_T = ddim_invert(model, linear_schedule, x0, steps=S)
        want = abar[-1].sqrt() * x0 + (1 - abar[-1]).sqrt() * eps
        np.testing.assert_allclose(x_T.numpy(), want.numpy(), rtol=0, atol=1e-10)


# -- slerp and lerp ------------------------------------------------------------------------------------


def _slerp_numpy(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """Reference slerp on flat vectors via the angle θ between them: sin((1-α)θ)/sinθ·a + sin(αθ)/sinθ·b."""
    theta = np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
    return (np.sin((1 - alpha) * theta) * a + np.sin(alpha * theta) * b) / np.sin(theta)


def _rotate_numpy(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """Geometric slerp for |a| = |b|: rotate a towards b by α·θ inside their plane (Gram-Schmidt)."""
    na = np.linalg.norm(a)
    ua, ub = a / na, b / np.linalg.norm(b)
    theta = np.arccos(np.clip(ua @ ub, -1, 1))
    perp = ub - (ua @ ub) * ua
    perp /= np.linalg.norm(perp)
    return na * (np.cos(alpha * theta) * ua + np.sin(alpha * theta) * perp)


def test_slerp_and_lerp_endpoints_are_exact() -> None:
    z0, z1 = _randn(3, 2, 4, 4, seed=6), _randn(3, 2, 4, 4, seed=7)
    for f in (slerp, lerp):
        assert torch.equal(f(z0, z1, 0.0), z0)
        assert torch.equal(f(z0, z1, 1.0), z1)


def test_slerp_keeps_gaussian_norm_lerp_shrinks_it() -> None:
    D = 4096
    z0, z1 = _randn(64, D, seed=8), _randn(64, D, seed=9)
    r_slerp = (slerp(z0, z1, 0.5).norm(dim=1) / math.sqrt(D)).numpy()
    r_lerp = (lerp(z0, z1, 0.5).norm(dim=1) / math.sqrt(D)).numpy()
    # independent Gaussians are nearly orthogonal in high D: lerp at 0.5 has norm √(1/4 + 1/4) = 0.707
    assert np.abs(r_slerp - 1).max() < 0.05, r_slerp
    assert np.abs(r_lerp - math.sqrt(0.5)).max() < 0.05, r_lerp
    for alpha in (0.1, 0.3, 0.7):  # slerp keeps the norm all along the path
        r = slerp(z0, z1, alpha).norm(dim=1) / math.sqrt(D)
        assert float((r - 1).abs().max()) < 0.05


def test_slerp_matches_reference_per_sample() -> None:
    z0 = _randn(5, 3, 8, 8, seed=10)
    z1 = 0.6 * z0 + _randn(5, 3, 8, 8, seed=11)  # correlated, so the angle is well below 90°
    z1_eq = z1 * (z0.flatten(1).norm(dim=1) / z1.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)  # |z1| = |z0|
    for alpha in (0.0, 0.25, 0.5, 0.9, 1.0):
        out, out_eq = slerp(z0, z1, alpha), slerp(z0, z1_eq, alpha)
        assert out.shape == z0.shape
        for b in range(5):
            a0, a1, a1_eq = z0[b].flatten().numpy(), z1[b].flatten().numpy(), z1_eq[b].flatten().numpy()
            np.testing.assert_allclose(out[b].flatten().numpy(), _slerp_numpy(a0, a1, alpha), rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(out_eq[b].flatten().numpy(), _rotate_numpy(a0, a1_eq, alpha), atol=1e-9)
    # a single unbatched vector works too: a third of the way from e1 to e2 is at 30°
    u0, u1 = torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    mid = slerp(u0, u1, 1 / 3)
    np.testing.assert_allclose(mid.numpy(), [math.cos(math.pi / 6), math.sin(math.pi / 6)], rtol=1e-12)


def test_slerp_parallel_falls_back_to_lerp() -> None:
    z = _randn(2, 6, seed=12)
    out = slerp(z, 2 * z, 0.5)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), (1.5 * z).numpy(), rtol=1e-9)
