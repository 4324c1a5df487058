"""DDIM and DDPM samplers checked against theory, with exact noise predictors instead of a network.

Gaussian data x0 ~ N(mu, s²) (per dimension) has the exact predictor E[ε | x_t] (conftest.GaussianEps).
With it the probability-flow ODE is exact, so DDIM (its Euler discretisation) must converge to the
analytic map x_T -> x0, and DDPM must reproduce the data's mean and variance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddim_lesson import (
    SPACINGS,
    NoiseSchedule,
    SamplerStep,
    ddim_progressive,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
)

F64 = torch.float64


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# -- the exact predictor itself ------------------------------------------------------------------


@pytest.mark.parametrize("t", [20, 300, 999])
def test_gaussian_predictor_is_conditional_mean(gaussian, t: int) -> None:
    """Regress the true ε on x_t by Monte Carlo: slope and intercept must match the closed form."""
    n = 100_000
    x0 = gaussian.mu + gaussian.s * _randn(n, 3, seed=10)
    eps = _randn(n, 3, seed=11)
    a = float(gaussian.abar[t])
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    tt = torch.full((n,), t)
    xc = x_t - x_t.mean(0)
    slope = (xc * (eps - eps.mean(0))).sum(0) / (xc**2).sum(0)  # (3,) least squares
    intercept = eps.mean(0) - slope * x_t.mean(0)
    resid = eps - (intercept + slope * x_t)
    se_slope = (resid.var(0) / (xc**2).sum(0)).sqrt()
    se_icpt = (resid.var(0) / n).sqrt() * (1 + x_t.mean(0) ** 2 / xc.var(0)).sqrt()
    model_icpt = gaussian(torch.zeros(1, 3, dtype=F64), tt[:1])[0]  # the predictor is affine in x_t
    model_slope = gaussian(torch.ones(1, 3, dtype=F64), tt[:1])[0] - model_icpt
    assert ((slope - model_slope).abs() < 5 * se_slope).all(), (slope, model_slope, se_slope)
    assert ((intercept - model_icpt).abs() < 5 * se_icpt + 1e-12).all(), (intercept, model_icpt, se_icpt)
    # and it is the MMSE predictor: its residual is uncorrelated with x_t
    r = eps - gaussian(x_t, tt)
    corr = (r - r.mean(0)).mul(xc).mean(0) / (r.std(0) * x_t.std(0))
    assert (corr.abs() < 5 / math.sqrt(n)).all(), corr


# -- DDIM, η = 0: a deterministic affine map that converges to the probability-flow ODE --------------


def test_ddim_eta0_converges_to_probability_flow_ode(gaussian, linear_schedule: NoiseSchedule) -> None:
    """For Gaussian data and the exact ε, η = 0 DDIM maps x_T affinely; as S grows it tends to the ODE's
    exact solution x0 = mu + s·z_T, z_T = (x_T - √ᾱ_T mu)/√(ᾱ_T s² + 1 - ᾱ_T) (≈ mu + s·x_T since ᾱ_T ≈ 4e-5).

    Measured max errors over the batch: S=10: 0.67, 50: 0.14, 200: 0.036, 1000: 0.0073 (first order in 1/S).
    """
    x_T = _randn(256, 3, seed=0)
    abar_T = float(linear_schedule.alphas_cumprod[-1])  # trailing spacing starts at t = T-1
    exact = gaussian.ode_solution(x_T, abar_T)
    errs = []
    for S in (10, 50, 200, 1000):
        x0 = ddim_sample(gaussian, linear_schedule, x_T, steps=S, eta=0.0, clip_x0=False)
        errs.append(float((x0 - exact).abs().max()))
    assert all(e2 < 0.5 * e1 for e1, e2 in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.02, errs
    # the map is affine: DDIM of a convex combination is the combination of the DDIMs
    a, b = x_T[:128], x_T[128:]
    f = lambda z: ddim_sample(gaussian, linear_schedule, z, steps=20, clip_x0=False)  # noqa: E731
    np.testing.assert_allclose(f(0.3 * a + 0.7 * b).numpy(), (0.3 * f(a) + 0.7 * f(b)).numpy(), atol=1e-10)


def test_ddim_eta0_maps_standard_normal_to_data_distribution(gaussian, linear_schedule: NoiseSchedule) -> None:
    """N(0, 1) samples go to a distribution with the data's mean mu and variance s².

    x_T is standardised over the batch (sample mean exactly 0, variance exactly 1), so for this
    affine map the output moments carry no Monte Carlo error. The exact ODE sends N(0, 1) to
    mean mu - s·√ᾱ_T mu/√v_T and variance s²/v_T (v_T = ᾱ_T s² + 1 - ᾱ_T), because N(0, 1) is not
    quite q(x_T); with ᾱ_T ≈ 4e-5 that is within 1.3% of s in the mean and 0.01% in variance.
    What is left is DDIM's discretisation error: measured variance ratios 0.994, 0.997, 0.985.
    """
    z = _randn(4096, 3, seed=1)
    x_T = (z - z.mean(0)) / z.std(0)
    x0 = ddim_sample(gaussian, linear_schedule, x_T, steps=1000, clip_x0=False)
    mu, s = gaussian.mu, gaussian.s
    a_T = float(linear_schedule.alphas_cumprod[-1])
    v_T = a_T * s**2 + 1 - a_T
    mean_ode, var_ode = mu - s * math.sqrt(a_T) * mu / v_T.sqrt(), s**2 / v_T
    assert ((mean_ode - mu).abs() < 0.02 * s).all() and ((var_ode / s**2 - 1).abs() < 1e-3).all()
    assert ((x0.mean(0) - mean_ode).abs() < 0.002 * s).all(), (x0.mean(0), mean_ode)
    assert ((x0.var(0) / var_ode - 1).abs() < 0.03).all(), x0.var(0) / var_ode


# -- DDPM ancestral sampling -------------------------------------------------------------------------


def _ddpm_moments(sch: NoiseSchedule, mu: float, s: float, variance: str) -> tuple[float, float]:
    """Mean and variance of DDPM's output, propagated exactly from x_T ~ N(0, 1) (no sampling).

    Step t: x0_pred = (x - √(1-ᾱ) ε(x))/√ᾱ with the exact ε, then the posterior mean
    μ̃ = √ᾱ_{t-1} β_t/(1-ᾱ_t) x0_pred + √α_t (1-ᾱ_{t-1})/(1-ᾱ_t) x (DDPM eq. 7) plus noise of variance
    β̃_t ("posterior") or β_t ("beta"), none at the last step. Each step is x' = A x + B + σ z.
    """
    abar, betas = sch.alphas_cumprod.tolist(), sch.betas.tolist()
    m, v = 0.0, 1.0
    for t in range(sch.T - 1, -1, -1):
        a, a_prev, beta = abar[t], (abar[t - 1] if t > 0 else 1.0), betas[t]
        k = math.sqrt(1 - a) / (a * s * s + 1 - a)  # ε(x) = k (x - √ᾱ mu)
        A0, B0 = (1 - math.sqrt(1 - a) * k) / math.sqrt(a), math.sqrt(1 - a) * k * mu  # x0_pred = A0 x + B0
        c0 = math.sqrt(a_prev) * beta / (1 - a)
        c1 = math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)
        var = 0.0 if t == 0 else ((1 - a_prev) / (1 - a) * beta if variance == "posterior" else beta)
        A, B = c0 * A0 + c1, c0 * B0
        m, v = A * m + B, A * A * v + var
    return m, v


@pytest.mark.parametrize("variance,n", [("posterior", 20_000), ("beta", 10_000)])
def test_ddpm_matches_theory(gaussian, linear_schedule: NoiseSchedule, variance: str, n: int) -> None:
    """DDPM over all T = 1000 steps with the exact ε: Monte Carlo moments match the exactly propagated
    moments within 5 SE, and those are close to mu, s². (float32 here: torch draws float64 normals
    ~5x slower on CPU, and float32 rounding is far below the Monte Carlo error.)

    With β̃ the output variance is slightly low (ratios 0.985, 0.993, 0.963 for s = 0.5, 1.5, 0.2):
    β̃ is the reverse variance only when x0 is known; it ignores Var(x0 | x_t). σ² = β errs the
    other way (1.003, 0.999, 1.009). Both shrink as T grows.
    """
    x_T = _randn(n, 3, seed=2).float()
    g = torch.Generator().manual_seed(3)
    x0 = ddpm_sample(gaussian, linear_schedule, x_T, clip_x0=False, generator=g, variance=variance)
    for d in range(3):
        mu, s = float(gaussian.mu[d]), float(gaussian.s[d])
        m_th, v_th = _ddpm_moments(linear_schedule, mu, s, variance)
        m, v = float(x0[:, d].mean()), float(x0[:, d].var())
        assert abs(m - m_th) < 5 * math.sqrt(v_th / n), (d, m, m_th)
        assert abs(v - v_th) < 5 * v_th * math.sqrt(2 / n), (d, v, v_th)
        assert abs(m_th - mu) < 1e-3 * s
        assert abs(v_th / s**2 - 1) < 0.05, (d, v_th / s**2)


def test_ddim_eta1_all_steps_is_ddpm(gaussian, smooth_model, linear_schedule: NoiseSchedule) -> None:
    """η = 1 over all T steps is DDPM with the posterior variance β̃: the same numbers for the same seed.

    With σ² = β (DDIM's σ̂) the outputs differ, and so does η = 1 on a strided sub-sequence compared
    with DDPM run on the full chain.
    """
    T = linear_schedule.T
    x_T = _randn(16, 3, seed=4)
    for model in (gaussian, smooth_model):
        ddim = ddim_sample(model, linear_schedule, x_T, steps=T, eta=1.0, clip_x0=False,
                           generator=torch.Generator().manual_seed(5))  # fmt: skip
        ddpm = ddpm_sample(model, linear_schedule, x_T, clip_x0=False, generator=torch.Generator().manual_seed(5))
        np.testing.assert_allclose(ddim.numpy(), ddpm.numpy(), rtol=0, atol=1e-9)
    beta = ddpm_sample(smooth_model, linear_schedule, x_T, clip_x0=False, variance="beta",
                       generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert float((beta - ddpm).abs().max()) > 1e-2
    strided = ddim_sample(smooth_model, linear_schedule, x_T, steps=100, eta=1.0, clip_x0=False,
                          generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert float((strided - ddpm).abs().max()) > 1e-2


# -- ddim_step: eq. 12, pure ------------------------------------------------------------------------


def test_ddim_step_is_equation_12() -> None:
    """Eq. 12 by hand: x_prev = √ᾱ_prev x0_pred + √(1-ᾱ_prev-σ²) ε + σ z, x0_pred = (x_t - √(1-ᾱ_t) ε)/√ᾱ_t."""
    x_t, eps, z = (torch.tensor([[0.8, -1.2]], dtype=F64), torch.tensor([[0.3, 0.5]], dtype=F64),
                   torch.tensor([[-0.4, 1.1]], dtype=F64))  # fmt: skip
    a_t, a_p, eta = 0.36, 0.64, 0.7
    sigma = eta * math.sqrt((1 - a_p) / (1 - a_t)) * math.sqrt(1 - a_t / a_p)  # eq. 16
    for i in range(2):
        xv, ev, zv = float(x_t[0, i]), float(eps[0, i]), float(z[0, i])
        x0 = (xv - math.sqrt(1 - a_t) * ev) / math.sqrt(a_t)
        want = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p - sigma**2) * ev + sigma * zv
        before = (x_t.clone(), eps.clone(), z.clone())
        x_prev, x0_pred = ddim_step(x_t, eps, a_t, a_p, eta=eta, noise=z)
        assert float(x_prev[0, i]) == pytest.approx(want, rel=1e-12)
        assert float(x0_pred[0, i]) == pytest.approx(x0, rel=1e-12)
        assert all(torch.equal(u, w) for u, w in zip(before, (x_t, eps, z))), "ddim_step modified its inputs"
    # η = 0 ignores the noise; the step to ᾱ = 1 returns x0_pred
    np.testing.assert_array_equal(ddim_step(x_t, eps, a_t, a_p, 0.0, z)[0].numpy(), ddim_step(x_t, eps, a_t, a_p)[0])
    np.testing.assert_allclose(ddim_step(x_t, eps, a_t, 1.0)[0].numpy(), ddim_step(x_t, eps, a_t, 1.0)[1].numpy())


def test_ddim_step_clipping_keeps_x_t_consistent() -> None:
    """With clip_x0, x0_pred is clipped and ε recomputed so that x_t = √ᾱ x0_pred + √(1-ᾱ) ε still holds."""
    x_t, eps = torch.tensor([[3.0, 0.1]], dtype=F64), torch.tensor([[-1.0, 0.2]], dtype=F64)
    a_t, a_p = 0.5, 0.8
    x_prev, x0_pred = ddim_step(x_t, eps, a_t, a_p, clip_x0=True)
    assert float(x0_pred[0, 0]) == 1.0  # (3 + √0.5)/√0.5 ≈ 5.2 is clipped
    eps_c = (x_t - math.sqrt(a_t) * x0_pred) / math.sqrt(1 - a_t)
    want = math.sqrt(a_p) * x0_pred + math.sqrt(1 - a_p) * eps_c
    np.testing.assert_allclose(x_prev.numpy(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip_x0", [False, True])
def test_the_loop_is_ddim_step_bit_for_bit(smooth_model, linear_schedule, eta: float, clip_x0: bool) -> None:
    """The loop runs eq. 12 as the learner reads it: step by step it equals ddim_step bit for bit, fed the same
    ε and the same noise draws (one per step with σ > 0, none on the last), with η given (not σ)."""
    x_T = 1.5 * _randn(4, 3, seed=21)  # wide enough that clipping bites
    for spacing in ("trailing", "linspace", "quadratic"):
        ts = ddim_timesteps(linear_schedule.T, 9, spacing).tolist()
        abar = [linear_schedule.abar(t) for t in ts] + [1.0]
        walk = ddim_progressive(smooth_model, linear_schedule, x_T, steps=9, eta=eta, spacing=spacing,
                                clip_x0=clip_x0, generator=torch.Generator().manual_seed(5))
        g, x, clipped = torch.Generator().manual_seed(5), x_T, 0
        for i, st in enumerate(walk):
            eps = smooth_model(x, torch.full((4,), ts[i], dtype=torch.long))
            noise = torch.randn(x.shape, generator=g, dtype=F64) if eta > 0 and abar[i + 1] < 1.0 else None
            x, x0_pred = ddim_step(x, eps, abar[i], abar[i + 1], eta=eta, noise=noise, clip_x0=clip_x0)
            clipped += int((x0_pred.abs() == 1.0).sum())
            assert torch.equal(st.x0_pred, x0_pred) and torch.equal(st.x, x), (spacing, i)
        assert not clip_x0 or clipped > 0, "the clipped path was never exercised"


def test_the_loop_calls_ddim_step_once_per_step_and_ddpm_does_not(smooth_model, linear_schedule, monkeypatch) -> None:
    """ddim_sample's update is core.updates.ddim_step itself (counted through the module it lives in), once per
    model call, with σ_t handed over so η is not re-derived; DDPM's ancestral loop does not go through it."""
    import ddim_lesson.core.updates as updates

    calls: list[float | None] = []
    real = updates.ddim_step

    def counted(*a, **kw):
        calls.append(kw.get("sigma"))
        return real(*a, **kw)

    monkeypatch.setattr(updates, "ddim_step", counted)
    x_T = _randn(3, 2, seed=4)
    ddim_sample(smooth_model, linear_schedule, x_T, steps=7, eta=0.5, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 7 and all(c is not None and c >= 0.0 for c in calls) and calls[-1] == 0.0
    calls.clear()
    ddpm_sample(smooth_model, linear_schedule, x_T, steps=5, generator=torch.Generator().manual_seed(0))
    assert calls == []


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip_x0", [False, True])
def test_apply_steps_folded_form_equals_ddim_step(eta: float, clip_x0: bool) -> None:
    """apply_step (the folded form DDPM's loop runs) on DDIM's coefficients equals ddim_step to rounding, clipped
    or not, so the folded scalars (clip_c_x0, clip_c_x) are checked against the paper's form."""
    from ddim_lesson.core.updates import apply_step, ddim_coefs

    x_t, eps, z = 1.5 * _randn(6, 3, seed=8), _randn(6, 3, seed=9), _randn(6, 3, seed=10)
    for a_t, a_p in ((0.3, 0.6), (0.05, 0.5), (0.9, 1.0)):
        want = ddim_step(x_t, eps, a_t, a_p, eta=eta, noise=z, clip_x0=clip_x0)
        got = apply_step(x_t, eps, ddim_coefs(a_t, a_p, eta), z, clip_x0)
        for w, g in zip(want, got):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-11, atol=1e-11)


def test_ddim_step_takes_sigma_itself_and_refuses_a_negative_one() -> None:
    """σ given equals σ derived from η (the loop's path); a negative σ is refused naming the value."""
    x_t, eps, z = _randn(4, 2, seed=1), _randn(4, 2, seed=2), _randn(4, 2, seed=3)
    from ddim_lesson.core.forward import ddim_sigma

    sig = ddim_sigma(0.4, 0.7, 0.6)
    a = ddim_step(x_t, eps, 0.4, 0.7, eta=0.6, noise=z)
    b = ddim_step(x_t, eps, 0.4, 0.7, noise=z, sigma=sig)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(ddim_step(x_t, eps, 0.4, 0.7, noise=z, sigma=0.5 * sig)[0], a[0])  # σ is used
    with pytest.raises(ValueError, match=r"sigma must be >= 0.*-0.1"):
        ddim_step(x_t, eps, 0.4, 0.7, noise=z, sigma=-0.1)


# -- model calls, the progressive generator, and the final step to ᾱ = 1 --------------------------------


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddim_makes_exactly_S_model_calls(counting, smooth_model, spacing: str) -> None:
    sch = NoiseSchedule.linear(1000)
    x_T = _randn(2, 3, seed=6)
    for S in (1, 2, 7, 50, 51, 333, 1000):
        m = counting(smooth_model)
        ddim_sample(m, sch, x_T, steps=S, eta=0.3, spacing=spacing, generator=torch.Generator().manual_seed(0))
        assert m.calls == S, (spacing, S, m.calls)
        assert all(t.dtype == torch.long and t.shape == (2,) for t in m.ts)
        assert [int(t[0]) for t in m.ts] == ddim_timesteps(1000, S, spacing).tolist()


def test_ddpm_makes_T_model_calls(counting, smooth_model) -> None:
    for sch in (NoiseSchedule.linear(1000), NoiseSchedule.cosine(37)):
        m = counting(smooth_model)
        ddpm_sample(m, sch, _randn(2, 3, seed=7), generator=torch.Generator().manual_seed(0))
        assert m.calls == sch.sampling_T == (sch.T if sch.kind == "linear" else sch.T - 1)  # cosine: σ̄ cut at 157.5
        assert [int(t[0]) for t in m.ts] == list(range(sch.sampling_T - 1, -1, -1))


@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_progressive_steps_chain_and_match_sample(smooth_model, linear_schedule: NoiseSchedule, eta: float) -> None:
    x_T = _randn(4, 3, seed=8)
    for spacing in SPACINGS:
        S = 13
        steps = list(ddim_progressive(smooth_model, linear_schedule, x_T, steps=S, eta=eta, spacing=spacing,
                                      clip_x0=False, generator=torch.Generator().manual_seed(9)))  # fmt: skip
        assert len(steps) == S and all(isinstance(st, SamplerStep) for st in steps)
        assert [st.t for st in steps] == ddim_timesteps(linear_schedule.T, S, spacing).tolist()
        assert all(a.t_prev == b.t for a, b in zip(steps, steps[1:]))
        assert steps[-1].t_prev == -1
        final = ddim_sample(smooth_model, linear_schedule, x_T, steps=S, eta=eta, spacing=spacing, clip_x0=False,
                            generator=torch.Generator().manual_seed(9))  # fmt: skip
        np.testing.assert_array_equal(steps[-1].x.numpy(), final.numpy())
        np.testing.assert_array_equal(steps[-1].x.numpy(), steps[-1].x0_pred.numpy())  # last step: ᾱ = 1
        assert not torch.equal(steps[0].x, steps[1].x)  # earlier steps were not overwritten in place


def _oracle(sch: NoiseSchedule, x0: torch.Tensor):
    """A model that knows x0 and so returns the true noise of any x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε."""
    abar = sch.alphas_cumprod

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = abar[t].view(-1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    return model


def test_last_step_goes_to_abar_one(linear_schedule: NoiseSchedule) -> None:
    """With the true noise the samplers return x0 exactly, even in one step: the final update lands on
    ᾱ = 1. Stopping at ᾱ_0 instead would leave √(1-ᾱ_0)·ε ≈ 0.01·ε of noise in the output."""
    sch = linear_schedule
    x0 = torch.rand(8, 3, generator=torch.Generator().manual_seed(10), dtype=F64) * 2 - 1
    eps = _randn(8, 3, seed=11)
    model = _oracle(sch, x0)
    for spacing in SPACINGS:
        for S in (1, 3, 50):
            t0 = int(ddim_timesteps(sch.T, S, spacing)[0])
            x_T = math.sqrt(sch.abar(t0)) * x0 + math.sqrt(1 - sch.abar(t0)) * eps
            for eta in (0.0, 0.7):
                out = ddim_sample(model, sch, x_T, steps=S, eta=eta, spacing=spacing, clip_x0=False,
                                  generator=torch.Generator().manual_seed(0))  # fmt: skip
                np.testing.assert_allclose(out.numpy(), x0.numpy(), rtol=0, atol=1e-9)
    x_T = math.sqrt(sch.abar(sch.T - 1)) * x0 + math.sqrt(1 - sch.abar(sch.T - 1)) * eps
    for variance in ("posterior", "beta"):  # DDPM adds no noise on its last step (Algorithm 2: z = 0 at t = 1)
        out = ddpm_sample(model, sch, x_T, generator=torch.Generator().manual_seed(0), variance=variance)
        np.testing.assert_allclose(out.numpy(), x0.numpy(), rtol=0, atol=1e-9)


# -- determinism ------------------------------------------------------------------------------------


def test_same_seed_same_output_and_eta0_ignores_generator(smooth_model, linear_schedule: NoiseSchedule) -> None:
    x_T = _randn(4, 3, seed=12)

    def run(eta: float, gen: torch.Generator | None) -> torch.Tensor:
        return ddim_sample(smooth_model, linear_schedule, x_T, steps=20, eta=eta, clip_x0=False, generator=gen)

    def gen(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    a, b, c = run(0.5, gen(1)), run(0.5, gen(1)), run(0.5, gen(2))
    assert torch.equal(a, b)
    assert float((a - c).abs().max()) > 1e-2
    g1, g2 = gen(1), gen(2)
    state = g1.get_state().clone()
    d0, d1, d2 = run(0.0, None), run(0.0, g1), run(0.0, g2)
    assert torch.equal(d0, d1) and torch.equal(d0, d2)
    assert torch.equal(g1.get_state(), state), "η = 0 drew random numbers after x_T"
    p1 = ddpm_sample(smooth_model, linear_schedule, x_T, clip_x0=False, generator=gen(3))
    p2 = ddpm_sample(smooth_model, linear_schedule, x_T, clip_x0=False, generator=gen(3))
    p3 = ddpm_sample(smooth_model, linear_schedule, x_T, clip_x0=False, generator=gen(4))
    assert torch.equal(p1, p2) and float((p1 - p3).abs().max()) > 1e-2


def test_logsnr_spacing_follows_the_models_own_schedule() -> None:
    """"logsnr" steps are uniform in the model's log-SNR: a cosine model gets the cosine grid, not the linear one."""
    from ddim_lesson import CallCounter, NoiseSchedule, ddim_invert, ddim_sample, ddim_timesteps

    cosine = NoiseSchedule.cosine(T=1000)
    counted = CallCounter(lambda x, t: torch.zeros_like(x))
    ddim_sample(counted, cosine, torch.zeros(2, 3), steps=8, spacing="logsnr")
    want = ddim_timesteps(1000, 8, "logsnr", schedule=cosine).tolist()
    assert counted.timesteps == want
    assert want != ddim_timesteps(1000, 8, "logsnr").tolist()  # the linear schedule's grid differs
    counted.reset()
    ddim_invert(counted, cosine, torch.zeros(2, 3), steps=8, spacing="logsnr")
    assert counted.timesteps == want[::-1]
