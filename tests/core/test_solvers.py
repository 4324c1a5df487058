"""The ODE solver ladder (ddim_lesson.core.solvers) and the "logsnr" spacing.

Checked against closed forms and an independent implementation, not only shapes:
- DDIM as a solver equals ddim_sample(eta=0, clip_x0=False) to 1e-10;
- the order of each solver, fitted on Gaussian data whose probability-flow map is exact;
- exactly ``steps`` model calls, at the timesteps of the grid, for every solver and spacing;
- diffusers' DPMSolverMultistepScheduler (dpmsolver++, orders 2 and 3) and HeunDiscreteScheduler, fed our
  timesteps through ``set_timesteps(timesteps=...)``. What cannot agree is shown and explained:
  diffusers' DPM-Solver computes in float32 whatever the input dtype (so agreement is ~1e-6, not
  1e-12), and Heun's ``init_noise_sigma`` is σ̄_max (the variance-exploding convention) where the
  exact x̄_T = x_T/√ᾱ_T is √(1 + σ̄_max²)·x_T;
- diffusers' DDIMScheduler clipping: our clipped step re-derives ε from the clipped x̂0, which is
  its ``use_clipped_model_output=True``, not its default.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.core.solvers import SOLVERS, calls_within, make_grid, ode_progressive, ode_sample

T = 1000
F64 = torch.float64
NFES = (21, 41, 81, 161)  # odd, so Heun spends them exactly


def _x_T(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# -- DDIM is the first rung ---------------------------------------------------------------------
@pytest.mark.parametrize("spacing", dl.SPACINGS)
@pytest.mark.parametrize("S", [1, 2, 7, 50])
def test_ddim_solver_equals_ddim_sample(smooth_model, linear_schedule, spacing: str, S: int) -> None:
    x_T = _x_T((4, 3, 5), S)
    ours = ode_sample(smooth_model, linear_schedule, x_T, steps=S, solver="ddim", spacing=spacing)
    ref = dl.ddim_sample(smooth_model, linear_schedule, x_T, steps=S, eta=0.0, spacing=spacing, clip_x0=False)
    assert _rel(ours, ref) < 1e-10


def test_ddim_solver_with_clipping_equals_ddim_sample(smooth_model, linear_schedule) -> None:
    x_T = _x_T((4, 3, 5), 1)
    ours = ode_sample(smooth_model, linear_schedule, x_T, steps=10, solver="ddim", clip_x0=True)
    ref = dl.ddim_sample(smooth_model, linear_schedule, x_T, steps=10, eta=0.0, clip_x0=True)
    assert float((ours - ref).abs().max()) < 1e-10 and float(ref.abs().max()) <= 1.0 + 1e-12


def test_dpmpp_2m_with_one_step_is_ddim(smooth_model, linear_schedule) -> None:
    """A single step has no history and goes to σ̄ = 0: order 1, exactly DDIM."""
    x_T = _x_T((4, 3), 2)
    a = ode_sample(smooth_model, linear_schedule, x_T, steps=1, solver="dpmpp_2m")
    b = ode_sample(smooth_model, linear_schedule, x_T, steps=1, solver="ddim")
    assert _rel(a, b) < 1e-12


# -- order on Gaussian data, against the exact flow map -------------------------------------------
def _errors(gaussian, sch, solver: str, spacing: str, nfes=NFES) -> list[float]:
    x_T = _x_T((512, 3), 5)
    exact = gaussian.ode_solution(x_T, float(sch.alphas_cumprod[-1]))
    return [float((ode_sample(gaussian, sch, x_T, steps=n, solver=solver, spacing=spacing) - exact).norm()
                  / exact.norm()) for n in nfes]


def _slope(nfes, errs) -> float:
    """Fitted -d log(error) / d log(NFE): the order."""
    return -float(np.polyfit(np.log(nfes), np.log(errs), 1)[0])


@pytest.mark.parametrize("solver,lo,hi", [("ddim", 0.9, 1.1), ("heun", 1.7, 2.6), ("dpmpp_2m", 1.7, 2.6)])
def test_order_on_gaussian_logsnr(gaussian, linear_schedule, solver: str, lo: float, hi: float) -> None:
    errs = _errors(gaussian, linear_schedule, solver, "logsnr")
    assert lo <= _slope(NFES, errs) <= hi, (solver, errs)
    assert errs[-1] < 0.02  # and it converges to the exact map, not to something else


def test_dpmpp_2m_order_on_trailing(gaussian, linear_schedule) -> None:
    errs = _errors(gaussian, linear_schedule, "dpmpp_2m", "trailing")
    assert _slope(NFES, errs) >= 1.7, errs


def test_second_order_beats_ddim_at_equal_calls(gaussian, linear_schedule) -> None:
    """At 81 calls on log-SNR steps: DPM-Solver++ 2M over 20x closer to the exact map than DDIM, Heun
    (41 steps for its 81 calls) over 3x (measured: 0.0170, 0.0044, 0.00049)."""
    e = {s: _errors(gaussian, linear_schedule, s, "logsnr", (81,))[0] for s in SOLVERS}
    assert e["heun"] * 3 < e["ddim"] and e["dpmpp_2m"] * 20 < e["ddim"], e


def test_dpmpp_3m_beats_2m_on_logsnr_steps_at_second_order(gaussian, linear_schedule) -> None:
    """3M as diffusers writes it, measured: on log-SNR steps it is closer to the exact map than 2M at every budget, by
    1.7x at 21 calls and 2.8x at 81 (4.3e-3 vs 7.4e-3, 1.8e-4 vs 4.9e-4), with the same order: its second difference
    has half the weight the exact integral of the quadratic needs, so its local error is O(h³) and its fitted order
    is 1.9 over 21-161 calls (2M: 2.0). Stopped before the final jump it is 2 as well
    (tests/evaluate/test_solver_study.py); the step to ᾱ = 1 (h = ∞, first order for every rung) adds a floor,
    9.9e-5 from t = 0 on this grid."""
    e3, e2 = _errors(gaussian, linear_schedule, "dpmpp_3m", "logsnr"), _errors(gaussian, linear_schedule, "dpmpp_2m",
                                                                              "logsnr")
    assert all(a < b for a, b in zip(e3, e2)) and e3[0] * 1.5 < e2[0] and e3[2] * 2.5 < e2[2], (e3, e2)
    assert 1.6 <= _slope(NFES, e3) <= 2.4 and e3[-1] < 1.2e-4


def test_dpmpp_3m_exact_beats_3m_until_the_final_jump_floors_both(gaussian, linear_schedule) -> None:
    """The exact rung to ᾱ = 1 on log-SNR steps: closer than 3M at 21 and 41 calls, and both meet the floor of the
    first-order last step (about 1e-4) by 161 calls, where they agree within 30 %."""
    ex, e3 = _errors(gaussian, linear_schedule, "dpmpp_3m_exact", "logsnr"), _errors(gaussian, linear_schedule,
                                                                                    "dpmpp_3m", "logsnr")
    assert ex[0] * 1.5 < e3[0] and ex[1] < e3[1], (ex, e3)
    assert abs(ex[-1] / e3[-1] - 1) < 0.3 and ex[-1] < 1.2e-4, (ex, e3)


# -- the 3M update in closed form: a quadratic x̂0 is integrated exactly by the exact rung only ----------------------
def test_multistep_update_closed_form_u_squared() -> None:
    """x̂0(u) = u² at u = -2, -1, 0 (so h·x̂0' = 0 and h²/2·x̂0'' = 1 at u = 0), x̄ = 0, one step of h = 1:
    the exact value is ∫_0^1 e^{-(1-u)} u² du = 1 - 2/e = 0.2642; diffusers' weighting gives half of it."""
    from ddim_lesson.core.multistep import D2_WEIGHT, multistep_update

    x0s = [torch.tensor([4.0], dtype=F64), torch.tensor([1.0], dtype=F64), torch.tensor([0.0], dtype=F64)]
    zero = torch.zeros(1, dtype=F64)
    exact = 1 - 2 / math.e
    got = {k: float(multistep_update(zero, x0s, [-2.0, -1.0, 0.0], 1.0, w)) for k, w in D2_WEIGHT.items()}
    assert got["dpmpp_3m_exact"] == pytest.approx(exact, abs=1e-14)
    assert got["dpmpp_3m"] == pytest.approx(exact / 2, abs=1e-14)  # the half weight, the bug the name hides


def _quadratic_x0(c: tuple[float, float, float]):
    """A model whose x̂0 is c0 + c1·λ + c2·λ² whatever x_t: ε = (x̄ - x̂0)/σ̄. And the exact flow of
    dx̄/dλ = -x̄ + p(λ): x̄ = p - p' + p'' + (x̄_0 - (p - p' + p'')(λ_0))·e^{-(λ - λ_0)}."""
    p = lambda v: c[0] + c[1] * v + c[2] * v * v  # noqa: E731
    xp = lambda v: p(v) - (c[1] + 2 * c[2] * v) + 2 * c[2]  # noqa: E731
    abar = dl.NoiseSchedule.linear(T).alphas_cumprod

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = float(abar[int(t[0])])
        sig = math.sqrt((1 - a) / a)
        return (x_t / math.sqrt(a) - p(-math.log(sig))) / sig

    def flow(xbar: torch.Tensor, lam0: float, lam1: float) -> torch.Tensor:
        return xp(lam1) + (xbar - xp(lam0)) * math.exp(-(lam1 - lam0))

    return model, flow


@pytest.mark.parametrize("spacing", ["logsnr", "trailing"])
def test_dpmpp_3m_exact_integrates_a_quadratic_x0_exactly(linear_schedule, spacing: str) -> None:
    """Through the sampler: with x̂0 quadratic in λ, every order-3 step of the exact rung lands on the exact flow from
    the state it had (to 1e-10); the same check on dpmpp_3m, the half weight, fails (a planted bug, caught)."""
    from ddim_lesson.core.multistep import order_3m

    model, flow = _quadratic_x0((0.3, -0.2, 0.05))
    x_T = _x_T((4, 3), 7)
    N = 20
    grid = make_grid(linear_schedule, N, spacing)
    worst = {}
    for solver in ("dpmpp_3m_exact", "dpmpp_3m"):
        x, worst[solver] = x_T, 0.0
        for i, st in enumerate(ode_progressive(model, linear_schedule, x_T, steps=N, solver=solver, spacing=spacing)):
            if order_3m(i, N) == 3:
                want = flow(x / grid.scale(i), grid.lam[i], grid.lam[i + 1]) * grid.scale(i + 1)
                worst[solver] = max(worst[solver], _rel(st.x, want))
            x = st.x
    assert worst["dpmpp_3m_exact"] < 1e-10 and worst["dpmpp_3m"] > 1e-4, worst


def test_dpmpp_3m_orders_follow_diffusers_lowering() -> None:
    """1, 2, then 3; the last step 1 (to σ̄ = 0); the one before it 2 when the grid is shorter than 15 steps."""
    from ddim_lesson.core.multistep import order_3m

    assert [order_3m(i, 1) for i in range(1)] == [1]
    assert [order_3m(i, 2) for i in range(2)] == [1, 1]
    assert [order_3m(i, 4) for i in range(4)] == [1, 2, 2, 1]
    assert [order_3m(i, 8) for i in range(8)] == [1, 2, 3, 3, 3, 3, 2, 1]
    assert [order_3m(i, 15) for i in range(15)][-3:] == [3, 3, 1] and order_3m(12, 14) == 2


# -- the cost: exactly `steps` model calls, at the grid's timesteps ---------------------------------
@pytest.mark.parametrize("spacing", dl.SPACINGS)
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_call_counts_and_timesteps(counting, smooth_model, linear_schedule, solver: str, spacing: str) -> None:
    for steps in (1, 3, 5, 9, 49):
        m = counting(smooth_model)
        walk = list(ode_progressive(m, linear_schedule, _x_T((2, 3)), steps=steps, solver=solver, spacing=spacing))
        assert m.calls == steps
        n = (steps + 1) // 2 if solver == "heun" else steps
        grid = make_grid(linear_schedule, n, spacing).ts
        assert [(s.t, s.t_prev) for s in walk] == list(zip(grid, grid[1:] + [-1]))
        seen = [int(t[0]) for t in m.ts]
        want = [grid[0]] + [t for t in grid[1:] for _ in range(2)] if solver == "heun" else grid
        assert seen == want, (solver, spacing, steps)
        assert all(bool((t == t[0]).all()) and t.dtype == torch.long for t in m.ts)


def test_progressive_last_step_is_ode_sample(smooth_model, linear_schedule) -> None:
    x_T = _x_T((3, 4), 3)
    for solver in SOLVERS:
        walk = list(ode_progressive(smooth_model, linear_schedule, x_T, steps=9, solver=solver, spacing="logsnr"))
        assert torch.equal(walk[-1].x, ode_sample(smooth_model, linear_schedule, x_T, steps=9, solver=solver,
                                                  spacing="logsnr"))
        assert walk[-1].t_prev == -1 and walk[0].t == T - 1


def test_calls_within_a_budget() -> None:
    assert [calls_within("heun", n) for n in (1, 2, 5, 10, 20, 5000)] == [1, 1, 5, 9, 19, 1999]
    assert [calls_within("dpmpp_2m", n) for n in (1, 10, 5000)] == [1, 10, 1000]
    with pytest.raises(ValueError, match="budget"):
        calls_within("heun", 0)


# -- bad inputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 10, "solver": "euler"}, "'euler'"),
    ({"steps": 10, "solver": "heun"}, "steps=10 .*odd.*9 or 11"),
    ({"steps": 0, "solver": "ddim"}, "steps.*0"),
    ({"steps": 1001, "solver": "dpmpp_2m"}, r"steps.*\[1, 1000\].*1001"),
    ({"steps": 2000, "solver": "heun"}, "2000"),
    ({"steps": 10.0, "solver": "ddim"}, "10.0"),
    ({"steps": True, "solver": "ddim"}, "bool"),
    ({"steps": 10, "spacing": "cosine"}, "'cosine'"),
])  # fmt: skip
def test_bad_arguments_name_the_value(smooth_model, linear_schedule, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ode_sample(smooth_model, linear_schedule, _x_T((2, 3)), **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_x_T_is_refused(smooth_model, linear_schedule, bad: float) -> None:
    x_T = _x_T((2, 3))
    x_T[1, 2] = bad
    with pytest.raises(ValueError, match="finite"):
        ode_sample(smooth_model, linear_schedule, x_T, steps=5)


def test_model_output_shape_is_checked(linear_schedule) -> None:
    with pytest.raises(ValueError, match="shape"):
        ode_sample(lambda x, t: x[:, :1], linear_schedule, _x_T((2, 3)), steps=3)


# -- the logsnr spacing ----------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", [dl.NoiseSchedule.linear(T), dl.NoiseSchedule.cosine(T)])
def test_logsnr_spacing(schedule) -> None:
    log_snr, top = schedule.log_snr, schedule.sampling_T  # a cosine schedule starts where σ̄ <= 157.5 (t = 994)
    for S in list(range(1, 60)) + [100, 250, 500, top - 1, top]:
        ts = dl.ddim_timesteps(T, S, "logsnr", schedule=schedule)
        assert ts.dtype == torch.long and len(ts) == S and len(set(ts.tolist())) == S, S
        assert bool((ts[:-1] > ts[1:]).all()) and int(ts[0]) == top - 1, S
        if S >= 2:
            assert int(ts[-1]) == 0
        assert bool((log_snr[ts][1:] > log_snr[ts][:-1]).all())  # monotone in log-SNR
    if schedule.kind != "linear":
        return  # the cosine schedule's capped last betas jump 6.9 in log-SNR: S = 10 already collides there
    ts = dl.ddim_timesteps(T, 10, "logsnr", schedule=schedule)  # no collisions at S = 10: nearest to uniform
    target = torch.linspace(float(log_snr[-1]), float(log_snr[0]), 10, dtype=F64)
    gaps = (log_snr[:-1] - log_snr[1:]).abs()  # (T-1,) log-SNR between neighbouring timesteps
    off = (log_snr[ts] - target).abs()
    assert bool((off <= 0.5 * torch.maximum(gaps[ts.clamp(max=T - 2)], gaps[(ts - 1).clamp(min=0)]) + 1e-12).all())


def test_logsnr_default_schedule_is_the_linear_one() -> None:
    assert torch.equal(dl.ddim_timesteps(T, 12, "logsnr"),
                       dl.ddim_timesteps(T, 12, "logsnr", schedule=dl.NoiseSchedule.linear(T)))
    with pytest.raises(ValueError, match="T = 500"):
        dl.ddim_timesteps(1000, 5, "logsnr", schedule=dl.NoiseSchedule.linear(500))


# -- diffusers: an independent implementation ---------------------------------------------------------
diffusers = pytest.importorskip("diffusers")


def _int_t(model):
    """diffusers hands timesteps over as float32 or int64; our models take int64."""
    return lambda x, t: model(x, t.long())


def _dpm(sch: dl.NoiseSchedule, ts: list[int], order: int = 2):
    ds = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", algorithm_type="dpmsolver++",
        solver_order=order, solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero")
    ds.alphas_cumprod = sch.alphas_cumprod.clone()  # share our float64 ᾱ
    ds.set_timesteps(timesteps=ts)
    return ds


@pytest.mark.parametrize("spacing", ["trailing", "logsnr", "linspace", "leading"])
@pytest.mark.parametrize("N", [1, 2, 3, 5, 8, 14, 15, 25])
def test_dpmpp_3m_matches_diffusers(gaussian, linear_schedule, spacing: str, N: int) -> None:
    """DPMSolverMultistepScheduler(solver_order=3) on our timesteps lands on ode_sample(solver="dpmpp_3m"); from 5
    steps on (the first with an order-3 step) it is not 2M."""
    ts = dl.ddim_timesteps(T, N, spacing, schedule=linear_schedule).tolist()
    ds = _dpm(linear_schedule, ts, order=3)
    x_T = _x_T((64, 3), N)
    x = x_T
    for t in ds.timesteps:
        x = ds.step(gaussian(x, t.expand(x.shape[0])), t, x).prev_sample.double()
    ours = ode_sample(gaussian, linear_schedule, x_T, steps=N, solver="dpmpp_3m", spacing=spacing)
    assert _rel(ours, x) < 1e-5  # float32 inside diffusers, as for 2M
    if N >= 5:
        assert _rel(ode_sample(gaussian, linear_schedule, x_T, steps=N, solver="dpmpp_2m", spacing=spacing), x) > 1e-4


@pytest.mark.parametrize("spacing", ["trailing", "logsnr", "linspace", "leading"])
@pytest.mark.parametrize("N", [1, 2, 3, 8, 25])
def test_dpmpp_2m_matches_diffusers(gaussian, linear_schedule, spacing: str, N: int) -> None:
    ts = dl.ddim_timesteps(T, N, spacing, schedule=linear_schedule).tolist()
    ds = _dpm(linear_schedule, ts)
    assert ds.timesteps.tolist() == ts
    x_T = _x_T((64, 3), N)
    x = x_T
    for t in ds.timesteps:
        x = ds.step(gaussian(x, t.expand(x.shape[0])), t, x).prev_sample.double()
    ours = ode_sample(gaussian, linear_schedule, x_T, steps=N, solver="dpmpp_2m", spacing=spacing)
    assert _rel(ours, x) < 1e-5  # diffusers steps in float32 whatever the input dtype (x̄_T is ~157 x_T)
    if N >= 3:  # and it is not DDIM: the multistep correction is there in both
        ddim = ode_sample(gaussian, linear_schedule, x_T, steps=N, solver="ddim", spacing=spacing)
        assert _rel(ddim, x) > 1e-4


def _heun(sch: dl.NoiseSchedule, ts: list[int]):
    hs = diffusers.HeunDiscreteScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02,
                                         beta_schedule="linear")
    hs.alphas_cumprod = sch.alphas_cumprod.clone()
    hs.set_timesteps(timesteps=ts)
    sig = [math.sqrt((1 - a) / a) for a in sch.alphas_cumprod[ts].tolist()] + [0.0]  # float64 σ̄, not float32
    hs.sigmas = torch.tensor([sig[0]] + [s for s in sig[1:-1] for _ in range(2)] + [0.0], dtype=F64)
    return hs


def _heun_loop(hs, model, xbar: torch.Tensor) -> torch.Tensor:
    for t in hs.timesteps:
        xbar = hs.step(model(hs.scale_model_input(xbar, t), t.expand(xbar.shape[0])), t, xbar).prev_sample
    return xbar


@pytest.mark.parametrize("spacing", ["trailing", "logsnr", "linspace", "leading"])
@pytest.mark.parametrize("N", [1, 2, 3, 8, 25])
def test_heun_matches_diffusers(smooth_model, linear_schedule, spacing: str, N: int) -> None:
    """Same grid, x̄_T = x_T/√ᾱ_T (exact), float64 σ̄: agreement to float64 round-off, with 2N-1 calls each."""
    ts = dl.ddim_timesteps(T, N, spacing, schedule=linear_schedule).tolist()
    hs = _heun(linear_schedule, ts)
    assert len(hs.timesteps) == 2 * N - 1
    x_T = _x_T((8, 3), N)
    ref = _heun_loop(hs, _int_t(smooth_model), x_T / math.sqrt(float(linear_schedule.alphas_cumprod[ts[0]])))
    ours = ode_sample(smooth_model, linear_schedule, x_T, steps=2 * N - 1, solver="heun", spacing=spacing)
    assert _rel(ours, ref) < 1e-10


def test_heun_init_noise_sigma_is_the_ve_convention(smooth_model, linear_schedule) -> None:
    """Shown, not matched: diffusers starts from x̄_T = σ̄_max·z (variance exploding). The exact VP start is
    x_T/√ᾱ = √(1+σ̄_max²)·z. From t = 999 they differ by 2e-5 relative; from leading's t = 900 by ~2e-3."""
    ts = dl.ddim_timesteps(T, 10, "leading").tolist()
    hs = _heun(linear_schedule, ts)
    sig0 = float(hs.sigmas[0])
    assert float(hs.init_noise_sigma) == pytest.approx(sig0, rel=1e-6)
    x_T = _x_T((8, 3), 4)
    theirs = _heun_loop(hs, _int_t(smooth_model), x_T * hs.init_noise_sigma.double())
    exact = _heun_loop(_heun(linear_schedule, ts), _int_t(smooth_model), x_T * math.sqrt(1 + sig0**2))
    ours = ode_sample(smooth_model, linear_schedule, x_T, steps=19, solver="heun", spacing="leading")
    assert _rel(ours, exact) < 1e-10 and _rel(ours, theirs) > 1e-4
    assert math.sqrt(1 + sig0**2) / sig0 - 1 == pytest.approx(1 / (2 * sig0**2), rel=0.01)


# -- DDIM clipping: which diffusers flag our clip_x0 is ---------------------------------------------------
def _ddim_clip(use_clipped: bool, model, x_T: torch.Tensor, S: int, sch: dl.NoiseSchedule) -> torch.Tensor:
    ds = diffusers.DDIMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                 clip_sample=True, set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading")
    ds.alphas_cumprod = sch.alphas_cumprod.clone()
    ds.set_timesteps(S)
    x = x_T
    for t in ds.timesteps:
        x = ds.step(model(x, t.expand(x.shape[0])), int(t), x, eta=0.0,
                    use_clipped_model_output=use_clipped).prev_sample
    return x


@pytest.mark.parametrize("S", [10, 50])
def test_clipping_is_diffusers_use_clipped_model_output(linear_schedule, S: int) -> None:
    """Our clipped step re-derives ε from the clipped x̂0: diffusers' ``use_clipped_model_output=True``.
    Its default (False) keeps the model's ε in the direction term, and lands elsewhere."""
    x_T = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(S))

    def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # a network-like ε that overshoots x0
        return 0.7 * x + 0.3 * torch.sin(3 * x + t.view(-1, 1, 1, 1).float() / 100)

    ours = dl.ddim_sample(eps_model, linear_schedule, x_T, steps=S, spacing="leading", clip_x0=True)
    flag = _ddim_clip(True, eps_model, x_T, S, linear_schedule)
    default = _ddim_clip(False, eps_model, x_T, S, linear_schedule)
    assert float((ours - flag).abs().max()) < 1e-5
    assert float((ours - default).abs().max()) > 0.5


def test_non_finite_eps_names_the_timestep(linear_schedule) -> None:
    def bad_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, float("nan")) if int(t[0]) < 500 else 0.1 * x

    with pytest.raises(ValueError, match="t=499"):  # trailing: 999, 899, ..., 499 is the first below 500
        ode_sample(bad_model, linear_schedule, _x_T((2, 3)), steps=10, solver="dpmpp_2m", spacing="trailing")


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("N", [5, 7, 10, 20, 33, 50])
def test_diffusers_trailing_dpm_is_our_trailing_grid(gaussian, linear_schedule, N: int, order: int) -> None:
    """The summary's recipe: DPMSolverMultistepScheduler(timestep_spacing="trailing", solver_order=2 or 3) with
    set_timesteps(N) visits our trailing timesteps and lands where ode_sample(solver="dpmpp_2m" or "dpmpp_3m",
    spacing="trailing") does."""
    ds = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", algorithm_type="dpmsolver++",
        solver_order=order, timestep_spacing="trailing", final_sigmas_type="zero")
    ds.alphas_cumprod = linear_schedule.alphas_cumprod.clone()
    ds.set_timesteps(N)
    assert ds.timesteps.tolist() == dl.ddim_timesteps(T, N, "trailing").tolist()
    x_T = _x_T((64, 3), N)
    x = x_T
    for t in ds.timesteps:
        x = ds.step(gaussian(x, t.expand(x.shape[0])), t, x).prev_sample.double()
    ours = ode_sample(gaussian, linear_schedule, x_T, steps=N, solver=f"dpmpp_{order}m", spacing="trailing")
    assert _rel(ours, x) < 1e-5


# -- the checks ddim_sample has, on every rung (issue 19, item 9) ------------------------------------------------------
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_an_overflowing_update_is_refused_not_returned(linear_schedule, solver: str) -> None:
    """ε finite at every step, x_T finite, but x̄ = x_T/√ᾱ overflows float32: a ValueError, never an inf sample."""
    x_T = torch.full((2, 3), 1e37)
    with pytest.raises(ValueError, match="not finite after the last step"):
        ode_sample(lambda x, t: torch.zeros_like(x), linear_schedule, x_T, steps=3 if solver == "heun" else 4,
                   solver=solver)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_a_schedule_whose_abar_rounds_to_1_is_refused(solver: str) -> None:
    """β below float64's resolution near 1: ᾱ = 1.0 at the first timesteps. DDIM and Heun used to return x_T
    unchanged there and the DPM-Solvers raised ZeroDivisionError; now every rung names the timestep."""
    sch = dl.NoiseSchedule.linear(20, 1e-18, 1e-2)
    assert float(sch.alphas_cumprod[0]) == 1.0
    with pytest.raises(ValueError, match=r"t=0 .*rounds to 1"):
        ode_sample(lambda x, t: 0.1 * x, sch, _x_T((2, 3)), steps=19 if solver == "heun" else 20, solver=solver,
                   spacing="linspace")


@pytest.mark.parametrize("bad", [lambda x, t: (x, x), lambda x, t: None, lambda x, t: (0.1 * x).double()])
def test_a_model_returning_no_tensor_or_another_dtype_is_named(linear_schedule, bad) -> None:
    x_T = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))  # float32
    for solver in SOLVERS:
        with pytest.raises(ValueError, match="tuple|NoneType|dtype torch.float64"):
            ode_sample(bad, linear_schedule, x_T, steps=3, solver=solver)
