"""eps_mse_by_t against the closed-form error of the exact Gaussian ε-predictor, and its contract."""

from __future__ import annotations

import pytest
import torch
from conftest import GaussianEps

from ddim_lesson import NoiseSchedule
from ddim_lesson.evaluate.loss_by_t import eps_mse_by_t, linear_eps_mse

TS = (0, 10, 100, 259, 500, 999)


def _gaussian_data(gaussian: GaussianEps, n: int, seed: int) -> torch.Tensor:
    z = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return gaussian.mu + gaussian.s * z  # (n, 3) ~ N(mu, s²) per dimension


def test_matches_closed_form_of_exact_gaussian_predictor(gaussian, linear_schedule):
    # For x0 ~ N(mu, s²) the exact E[ε | x_t] has error 1 - (1-ᾱ)/(ᾱ s² + 1 - ᾱ) per dimension.
    x0 = _gaussian_data(gaussian, 20_000, seed=0)
    got = eps_mse_by_t(gaussian, linear_schedule, x0, TS, batch_size=4096, generator=torch.Generator().manual_seed(1))
    abar = linear_schedule.alphas_cumprod[list(TS)].view(-1, 1)  # (K, 1)
    s2 = gaussian.s**2  # (3,)
    want = (1 - (1 - abar) / (abar * s2 + 1 - abar)).mean(1)  # (K,) written out, not through linear_eps_mse
    assert got.shape == (len(TS),) and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=0.03, atol=0)  # about 2 % standard error at the worst t
    assert got[-1] < 1e-3 * got[0]  # ε is easy at t = 999 and hard at t = 0


def test_linear_eps_mse_closed_form_and_limits(gaussian, linear_schedule):
    abar = linear_schedule.alphas_cumprod.view(-1, 1)  # (T, 1)
    got = linear_eps_mse(abar, gaussian.s**2)  # (T, 3)
    torch.testing.assert_close(got, 1 - (1 - abar) / (abar * gaussian.s**2 + 1 - abar))
    assert float(linear_eps_mse(1.0, 0.3)) == pytest.approx(1.0) and float(linear_eps_mse(0.0, 0.3)) == 0.0


def test_zero_predictor_scores_one_at_every_t(linear_schedule):
    x0 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2))
    got = eps_mse_by_t(lambda x, t: torch.zeros_like(x), linear_schedule, x0, (0, 999),
                       generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, torch.ones(2, dtype=torch.float64), rtol=0.05, atol=0)


def test_calls_model_with_each_t_in_batches_and_is_seeded(gaussian, linear_schedule, counting):
    x0 = _gaussian_data(gaussian, 10, seed=4)
    model = counting(gaussian)
    a = eps_mse_by_t(model, linear_schedule, x0, torch.tensor([999, 5]), repeats=2, batch_size=4,
                     generator=torch.Generator().manual_seed(5))
    assert model.calls == 2 * 2 * 3  # K · repeats · ceil(10 / 4)
    assert [int(t[0]) for t in model.ts] == [999] * 6 + [5] * 6
    assert all(t.dtype == torch.long and t.shape == (n,) for t, n in zip(model.ts, [4, 4, 2] * 4))
    b = eps_mse_by_t(gaussian, linear_schedule, x0, [999, 5], repeats=2, batch_size=4,
                     generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    ({"timesteps": [0, 1000]}, "timestep must be an integer in \\[0, 999\\], got 1000"),
    ({"timesteps": [2.5]}, "timestep must be an integer"),
    ({"repeats": 0}, "repeats"),
    ({"batch_size": 0}, "batch_size"),
    ({"x0": torch.zeros(5)}, "shape \\(N, ...\\)"),
])
def test_bad_arguments_name_the_value(kwargs, match):
    args = {"timesteps": [0], "x0": torch.zeros(3, 2)} | kwargs
    with pytest.raises(ValueError, match=match):
        eps_mse_by_t(lambda x, t: x, NoiseSchedule.linear(1000), args.pop("x0"), args.pop("timesteps"), **args)
