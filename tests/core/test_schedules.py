"""Noise schedules and timestep spacings, checked against their closed forms and the definitions in the docstrings
of core/schedules.py.

The spacing references below are written in exact rational arithmetic (``fractions.Fraction``),
so a tie such as T - i·T/S = 937.5 is decided by the round-half-to-even rule, never by how a
particular float library happens to accumulate ``arange``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from ddim_lesson import DEFAULT_SPACING, SPACINGS, NoiseSchedule, ddim_timesteps, naive_timesteps

# -- β schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("T,b0,b1", [(1000, 1e-4, 0.02), (50, 1e-3, 0.2), (1, 0.01, 0.01)])
def test_linear_schedule_closed_form(T: int, b0: float, b1: float) -> None:
    sch = NoiseSchedule.linear(T, b0, b1)
    assert sch.betas.dtype == torch.float64 and sch.alphas_cumprod.dtype == torch.float64
    assert sch.betas.shape == (T,) and sch.alphas_cumprod.shape == (T,)
    betas = [b0 + (b1 - b0) * k / (T - 1) if T > 1 else b0 for k in range(T)]  # evenly spaced
    abar = np.cumprod([1.0 - b for b in betas])  # ᾱ_t = ∏_{s<=t} (1 - β_s)
    np.testing.assert_allclose(sch.betas.numpy(), betas, rtol=1e-12, atol=0)
    np.testing.assert_allclose(sch.alphas_cumprod.numpy(), abar, rtol=1e-12, atol=0)


def test_linear_schedule_reaches_noise(linear_schedule: NoiseSchedule) -> None:
    # DDPM's schedule: ᾱ_{T-1} ≈ 4.0e-5, so x_{T-1} is almost pure noise (√ᾱ ≈ 0.0064).
    assert 3.5e-5 < float(linear_schedule.alphas_cumprod[-1]) < 4.5e-5
    assert linear_schedule.abar(-1) == 1.0  # the convention ᾱ_{-1} = 1 (clean data)


@pytest.mark.parametrize("T,s", [(1000, 0.008), (100, 0.008), (20, 0.0)])
def test_cosine_schedule_closed_form(T: int, s: float) -> None:
    sch = NoiseSchedule.cosine(T, s)
    assert sch.betas.dtype == torch.float64 and sch.alphas_cumprod.dtype == torch.float64
    assert sch.betas.shape == (T,) and sch.alphas_cumprod.shape == (T,)

    def f(t: float) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    # Index k holds the paper's t = k + 1: ᾱ = f(k+1)/f(0), wherever no β was capped at 0.999 yet.
    abar_closed = np.array([f(k + 1) / f(0) for k in range(T)])
    betas = sch.betas.numpy()
    assert betas.max() <= 0.999 + 1e-15 and betas.min() > 0
    capped = np.nonzero(betas >= 0.999 - 1e-15)[0]
    first_cap = int(capped[0]) if capped.size else T
    assert first_cap >= T - 1, "only the last β (where f(T) = 0) may reach the cap"
    np.testing.assert_allclose(sch.alphas_cumprod.numpy()[:first_cap], abar_closed[:first_cap], rtol=1e-10, atol=1e-15)
    if first_cap == T - 1:  # the capped last step: ᾱ_{T-1} = ᾱ_{T-2}·(1 - 0.999)
        np.testing.assert_allclose(float(sch.alphas_cumprod[-1]), abar_closed[-2] * 0.001, rtol=1e-10)
    np.testing.assert_allclose(sch.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)


@pytest.mark.parametrize(
    "sch",
    [NoiseSchedule.linear(), NoiseSchedule.cosine(), NoiseSchedule.linear(30, 1e-3, 0.3)],
    ids=["linear", "cosine", "linear30"],
)
def test_snr_strictly_decreasing(sch: NoiseSchedule) -> None:
    snr = sch.snr
    abar = sch.alphas_cumprod
    np.testing.assert_allclose(snr.numpy(), (abar / (1 - abar)).numpy(), rtol=1e-12, atol=0)
    assert (snr[1:] < snr[:-1]).all()
    assert (sch.log_snr[1:] < sch.log_snr[:-1]).all()


# -- timestep spacings: exact references written out here --------------------------------------------


def ref_leading(T: int, S: int) -> list[int]:
    return [i * (T // S) for i in range(S)]


def ref_trailing(T: int, S: int) -> list[int]:
    return [round(Fraction(T) - Fraction(i * T, S)) - 1 for i in range(S)]  # round(arange(T, 0, -T/S)) - 1


def ref_linspace(T: int, S: int) -> list[int]:
    return [round(Fraction(i * (T - 1), S - 1)) for i in range(S)] if S > 1 else [0]


def ref_quadratic_paper(T: int, S: int) -> list[int]:
    """The paper's "quad" skip before collisions are resolved: floor((i·√(0.8T)/(S-1))²)."""
    return [math.floor(Fraction(4 * T * i * i, 5 * (S - 1) ** 2)) for i in range(S)] if S > 1 else [0]


REFS = {"leading": ref_leading, "trailing": ref_trailing, "linspace": ref_linspace}

# Many (T, S) pairs: every S for small T, a stride through S for T = 1000 plus S values where the
# formula hits an exact tie (1000 - 3·1000/48 = 937.5; 999·29/58 = 499.5) that float code may break.
PAIRS = (
    [(T, S) for T in (1, 2, 7, 37, 100) for S in range(1, T + 1)]
    + [(1000, S) for S in range(1, 1001, 23)]
    + [(1000, S) for S in (16, 21, 26, 27, 48, 59, 103, 240, 304, 999, 1000)]
    + [(4000, S) for S in (16, 27, 50, 333)]
)


def _check_shape(ts: torch.Tensor, T: int, S: int) -> list[int]:
    assert ts.dtype == torch.long and ts.shape == (S,)
    vals = ts.tolist()
    assert all(a > b for a, b in zip(vals, vals[1:])), f"not strictly descending: {vals}"
    assert 0 <= vals[-1] and vals[0] <= T - 1
    return vals


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_spacing_matches_definition(spacing: str) -> None:
    ref = REFS[spacing]
    for T, S in PAIRS:
        vals = _check_shape(ddim_timesteps(T, S, spacing), T, S)
        assert vals == sorted(ref(T, S), reverse=True), f"{spacing} T={T} S={S}"


def test_quadratic_matches_paper_where_distinct_and_pushes_collisions_up() -> None:
    n_exact = 0
    for T, S in PAIRS:
        vals = _check_shape(ddim_timesteps(T, S, "quadratic"), T, S)
        paper = ref_quadratic_paper(T, S)
        ours = vals[::-1]  # ascending
        if len(set(paper)) == S:
            assert ours == paper, f"T={T} S={S}"
            n_exact += 1
        else:  # collisions are pushed apart upward; nothing moves below the paper's value
            assert all(o >= p for o, p in zip(ours, paper)), f"T={T} S={S}"
    assert n_exact >= 20  # the comparison above was not vacuous


@pytest.mark.parametrize("T", [1000, 13])
def test_every_spacing_distinct_for_every_S(T: int) -> None:
    """Exactly S distinct values in [0, T-1] for every S in [1, T] (quadratic is the hard case)."""
    for spacing in SPACINGS:
        for S in range(1, T + 1):
            ts = ddim_timesteps(T, S, spacing).numpy()
            assert ts.shape == (S,), (spacing, S)
            assert np.unique(ts).size == S, (spacing, S)
            assert ts.min() >= 0 and ts.max() <= T - 1, (spacing, S)
            assert (np.diff(ts) < 0).all(), (spacing, S)


def test_trailing_and_default_start_at_last_timestep() -> None:
    assert DEFAULT_SPACING == "trailing"
    for T in (1, 10, 1000):
        for S in range(1, T + 1):
            assert int(ddim_timesteps(T, S, "trailing")[0]) == T - 1
            assert int(ddim_timesteps(T, S)[0]) == T - 1


def test_leading_skips_last_timestep() -> None:
    """Leading spacing tops out at (S-1)·(T//S): it evaluates t = T-1 only when that equals T-1."""
    for T in (1000, 37):
        for S in range(2, T + 1):
            ts = ddim_timesteps(T, S, "leading")
            top = (T // S) * (S - 1)
            assert int(ts[0]) == top
            if top < T - 1:
                assert T - 1 not in ts.tolist()
    assert int(ddim_timesteps(1000, 50, "leading")[0]) == 980  # its SNR is 1.46x that at t = 999
    assert int(ddim_timesteps(1000, 1, "leading")[0]) == 0


def test_naive_recipe_gives_one_step_too_many() -> None:
    naive = naive_timesteps(1000, 50)
    assert naive.numel() == 51  # range(0, 1000, 20) has 50 entries, then 999 is appended
    assert naive.tolist()[:2] == [999, 980] and naive.tolist()[-1] == 0
    assert ddim_timesteps(1000, 50).numel() == 50
