"""The notebooks' image measurements against numpy and closed forms, each with a planted bug the same check catches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddim_lesson.evaluate.image_stats import (
    background_share,
    correlation,
    highlights,
    neighbour_correlation,
    total_variation,
)


def _images(seed: int, shape: tuple[int, ...] = (5, 1, 9, 11)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # pixels in [-1, 1]


def _ar1_rows(rho: float, n_rows: int, width: int, seed: int) -> torch.Tensor:
    """Rows of a stationary AR(1) process, x_{j+1} = ρ x_j + √(1-ρ²) n_j: neighbours correlate by exactly ρ."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_rows, width, generator=g, dtype=torch.float64)
    x = torch.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for j in range(1, width):
        x[:, j] = rho * x[:, j - 1] + math.sqrt(1 - rho**2) * noise[:, j]
    return x[:, None, None, :]  # (n_rows, 1, 1, width)


# -- correlation -------------------------------------------------------------------------------
def test_correlation_matches_numpy_and_planted_uncentred_version_does_not() -> None:
    a, b = _images(0), _images(1)
    b = 0.6 * a + 0.4 * b + 0.3  # correlated, with an offset that only centring removes
    want = float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])
    assert correlation(a, b) == pytest.approx(want, abs=1e-6)
    assert correlation(a.double(), b.double()) == pytest.approx(want, abs=1e-12)
    uncentred = float(a.flatten() @ b.flatten() / (a.norm() * b.norm()))  # the planted bug: no centring
    assert abs(uncentred - want) > 1e-2


def test_correlation_closed_forms_and_shapes() -> None:
    a = _images(2).double()
    assert correlation(a, a) == pytest.approx(1.0, abs=1e-12)
    assert correlation(a, -3 * a + 5) == pytest.approx(-1.0, abs=1e-12)  # affine maps keep |ρ| = 1
    assert correlation(a, a.reshape(-1)) == pytest.approx(1.0, abs=1e-12)  # any shapes, same entry count
    # ρ of x_0 and x_t = √ᾱ x_0 + √(1-ᾱ) ε is √ᾱ s / √(ᾱ s² + 1 - ᾱ) (notebook 01), here with 200k draws
    g = torch.Generator().manual_seed(3)
    x0, eps = 0.5 * torch.randn(200_000, generator=g, dtype=torch.float64), torch.randn(200_000, generator=g,
                                                                                       dtype=torch.float64)
    abar, s = 0.3, 0.5
    rho = math.sqrt(abar) * s / math.sqrt(abar * s**2 + 1 - abar)
    assert correlation(x0, math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps) == pytest.approx(rho, abs=0.01)


@pytest.mark.parametrize("a, b, match", [
    (torch.ones(4), torch.arange(4.0), "constant"),
    (torch.full((2, 1, 4, 4), 0.3), torch.rand(2, 1, 4, 4), "constant"),  # 0.3 - mean rounds to ±1e-8, not 0
    (torch.arange(4.0), torch.arange(5.0), "same number of entries"),
    (torch.tensor([1.0]), torch.tensor([2.0]), "at least 2"),
    (torch.arange(4), torch.arange(4.0), "floating"),
    (torch.tensor([0.0, float("nan")]), torch.arange(2.0), "finite"),
])
def test_correlation_refuses_bad_input(a: torch.Tensor, b: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        correlation(a, b)


def test_correlation_of_mixed_dtypes_is_computed_in_the_common_one() -> None:
    a, b = _images(8), _images(9).double()
    b = 0.5 * a.double() + b + 0.3  # float32 a, float64 b (torch's dot refused the pair), an offset to centre away
    want = float(np.corrcoef(a.double().flatten().numpy(), b.flatten().numpy())[0, 1])
    assert correlation(a, b) == correlation(a.double(), b) == correlation(b, a) == pytest.approx(want, abs=1e-12)
    assert correlation(a.half(), a.bfloat16()) == pytest.approx(1.0, abs=1e-2)  # float16 with bfloat16: float32
    planted = float(a.flatten().double() @ b.flatten() / (a.norm().double() * b.norm()))  # no centring
    assert abs(planted - want) > 1e-2


def test_correlation_and_image_stats_docstrings_say_what_notebook_03_measures() -> None:
    """Notebook 03 correlates consecutive states of q_σ(x_{t-1} | x_t, x_0), given x_0; given x_0 that correlation
    is √(1-ᾱ_{t-1}-σ²)/√(1-ᾱ_{t-1}) (eq. 7), 1 at η = 0, which ``correlation`` measures on q_sigma_step draws."""
    import ddim_lesson.evaluate.image_stats as image_stats
    from ddim_lesson import ddim_sigma, q_sigma_step

    doc = " ".join(image_stats.__doc__.split())
    assert "q_σ(x_{t-1} | x_t, x_0), given x_0" in doc and "the joint of two DDIM steps" not in doc
    g = torch.Generator().manual_seed(10)
    a_t, a_p, x0 = 0.3, 0.4, torch.full((100_000,), 0.8, dtype=torch.float64)
    x_t = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    for eta in (0.0, 0.5, 1.0):
        s = ddim_sigma(a_t, a_p, eta)
        x_p = q_sigma_step(x_t, x0, a_t, a_p, s, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        rho = math.sqrt(1 - a_p - s**2) / math.sqrt(1 - a_p)
        assert correlation(x_t, x_p) == pytest.approx(rho, abs=0.01)  # SE about 0.003 at 100k draws


# -- neighbour_correlation ---------------------------------------------------------------------
def test_neighbour_correlation_of_an_ar1_field_is_rho_and_of_noise_is_zero() -> None:
    for rho in (0.0, 0.5, 0.9):
        z = _ar1_rows(rho, 400, 64, seed=int(rho * 10))  # 400 × 63 neighbour pairs: standard error about 0.002
        assert neighbour_correlation(z) == pytest.approx(rho, abs=0.02)
    z = _ar1_rows(0.7, 50, 32, seed=4)
    left, right = z[..., :-1].flatten().numpy(), z[..., 1:].flatten().numpy()
    assert neighbour_correlation(z) == pytest.approx(float(np.corrcoef(left, right)[0, 1]), abs=1e-12)
    # planted bug: neighbours two pixels apart correlate by ρ², not ρ, so the check above would fail for it
    two_apart = float(np.corrcoef(z[..., :-2].flatten().numpy(), z[..., 2:].flatten().numpy())[0, 1])
    assert abs(two_apart - 0.7) > 0.15


def test_neighbour_correlation_is_horizontal_only() -> None:
    rows = _ar1_rows(0.8, 200, 40, seed=5)[:, 0, 0, :]  # (200, 40): correlated along each row
    field = rows[None, None]  # (1, 1, 200, 40): rows independent of each other, so vertical neighbours don't correlate
    assert neighbour_correlation(field) == pytest.approx(0.8, abs=0.03)
    assert neighbour_correlation(field.transpose(-1, -2)) == pytest.approx(0.0, abs=0.03)  # the planted transpose


def test_neighbour_correlation_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="2 entries wide"):
        neighbour_correlation(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        neighbour_correlation(torch.zeros(5))


@pytest.mark.parametrize("z", [
    torch.full((2, 1, 4, 5), 0.3),  # constant: torch.corrcoef gave nan, correlation 1.0000001 (0.3 - mean ≠ 0)
    torch.zeros(2, 1, 4, 5),
    torch.cat([torch.rand(3, 1, 4, 1, generator=torch.Generator().manual_seed(11)), torch.ones(3, 1, 4, 1)], -1),
])  # the last: W = 2 with a varying left column but constant right neighbours
def test_neighbour_correlation_refuses_constant_neighbours_as_correlation_does(z: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="constant: the correlation is undefined"):
        neighbour_correlation(z)
    with pytest.raises(ValueError, match="constant: the correlation is undefined"):
        correlation(z[..., 1:], z[..., :-1])


# -- total_variation ---------------------------------------------------------------------------
def test_total_variation_of_ramps_and_a_checkerboard() -> None:
    H, W = 6, 8
    ramp = torch.arange(W, dtype=torch.float64).expand(1, 1, H, W) * 0.1  # each horizontal step is 0.1, vertical 0
    assert total_variation(ramp) == pytest.approx(0.5 * 0.1, abs=1e-12)
    assert total_variation(ramp.transpose(-1, -2)) == pytest.approx(0.5 * 0.1, abs=1e-12)
    checker = ((torch.arange(H)[:, None] + torch.arange(W)[None]) % 2).double().expand(2, 1, H, W) * 2 - 1
    assert total_variation(checker) == pytest.approx(2.0, abs=1e-12)  # every neighbour differs by 2
    assert total_variation(torch.full((2, 1, H, W), 0.3)) == 0.0


def test_total_variation_matches_numpy_and_a_planted_one_direction_version_fails_the_ramps() -> None:
    x = _images(6)
    xn = x.numpy().astype(np.float64)
    want = 0.5 * (np.abs(np.diff(xn, axis=-2)).mean() + np.abs(np.diff(xn, axis=-1)).mean())
    assert total_variation(x) == pytest.approx(want, rel=1e-5)
    assert total_variation(x.double()) == pytest.approx(want, rel=1e-12)
    planted = lambda x: float((x[..., :, 1:] - x[..., :, :-1]).abs().mean())  # noqa: E731  horizontal only
    ramp = torch.arange(8, dtype=torch.float64).expand(1, 1, 6, 8) * 0.1
    assert planted(ramp) != pytest.approx(0.05) or planted(ramp.transpose(-1, -2)) != pytest.approx(0.05)


def test_total_variation_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="2 × 2"):
        total_variation(torch.zeros(2, 1, 1, 5))
    with pytest.raises(ValueError, match="finite"):
        total_variation(torch.full((1, 1, 3, 3), float("inf")))


# -- highlights and background_share -----------------------------------------------------------
def test_highlights_is_numpys_per_image_percentile() -> None:
    x = _images(7, (4, 1, 10, 10)).double()
    want = np.percentile(x.flatten(1).numpy(), 95, axis=1)  # numpy's default is the same linear interpolation
    np.testing.assert_allclose(highlights(x).numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(highlights(x, q=0.5).numpy(), np.median(x.flatten(1).numpy(), axis=1), atol=1e-12)
    pooled = np.percentile(x.numpy(), 95)  # the planted bug: one percentile over the whole batch
    assert np.abs(want - pooled).max() > 1e-3
    ramp = torch.linspace(-1, 1, 101, dtype=torch.float64)[None]  # (1, 101): the 95th percentile is the 96th value, 0.9
    assert float(highlights(ramp)) == pytest.approx(0.9, abs=1e-12)


def test_background_share_counts_pixels_below_the_threshold_per_image() -> None:
    x = torch.full((3, 1, 4, 5), 0.5)
    x[0, 0, 0, :] = -1.0  # 5 of 20 black
    x[1, 0, :2, :] = -0.95  # 10 of 20 below -0.9
    x[2, 0, 0, 0] = -0.9  # exactly -0.9 is not below it
    np.testing.assert_allclose(background_share(x).numpy(), [0.25, 0.5, 0.0])
    assert background_share(x, below=-0.99).tolist() == [0.25, 0.0, 0.0]
    planted = (x.flatten(1) <= -0.9).float().mean(1)  # <= instead of <: counts the pixel at exactly -0.9
    assert planted[2] != background_share(x)[2]


@pytest.mark.parametrize("call, match", [
    (lambda: highlights(torch.zeros(2, 4), q=1.5), "q must be a finite number in"),
    (lambda: highlights(torch.zeros(4)), "at least 2 dimensions"),
    (lambda: background_share(torch.zeros(2, 4), below=2.0), "below must be a finite number in"),
    (lambda: background_share(torch.zeros(2, 4, dtype=torch.int64)), "floating"),
])
def test_highlights_and_background_share_refuse_bad_input(call, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        call()
