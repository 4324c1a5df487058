"""evaluate.solver_study: the Gaussian data's exact flow map, per-step errors and the fitted order."""

from __future__ import annotations

import math

import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.evaluate.solver_study import fitted_order, gaussian_data, step_errors


# -- Gaussian study helpers -------------------------------------------------------------------------
def test_gaussian_flow_is_exact_and_step_errors_add_up() -> None:
    sch = dl.NoiseSchedule.linear(1000)
    data = gaussian_data(sch)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, b, c = 0.1, 0.5, 0.9
    assert float((data.flow(data.flow(x, a, b), b, c) - data.flow(x, a, c)).abs().max()) < 1e-12  # a flow composes
    se = step_errors(data, x, steps=1000, solver="ddim", spacing="trailing")
    assert se.global_[-1] < 0.002 and len(se.local) == 1000  # DDIM with every timestep is nearly exact
    se = step_errors(data, x, steps=10, solver="ddim", spacing="trailing")
    assert se.global_[0] == pytest.approx(se.local[0])  # the first step's error is all there is after one step
    assert math.isinf(se.log_snr[-1]) and se.log_snr[0] < se.log_snr[1]
    assert fitted_order([10, 100], [1.0, 0.01]) == pytest.approx(2.0)


# -- orders, measured: the multistep update alone, and runs stopped before the final jump ------------------------------
STEPS = (160, 320, 640, 1280)


def test_scalar_solution_is_exact() -> None:
    """The closed form solves dx/dλ = -x + cos λ: a centred difference of it equals the right-hand side."""
    from ddim_lesson.evaluate.solver_study import OMEGA, scalar_solution

    for lam in (-2.0, 0.3, 2.5):
        d = (scalar_solution(lam + 1e-5) - scalar_solution(lam - 1e-5)) / 2e-5
        assert d == pytest.approx(-scalar_solution(lam) + math.cos(OMEGA * lam), abs=1e-8)
    assert scalar_solution(-3.0) == 1.0


def test_scalar_orders_are_2_for_diffusers_3m_and_3_for_the_exact_rung() -> None:
    """The 3M update itself, on dx/dλ = -x + cos λ with an exact warm-up (slopes between successive step counts
    from 20 to 1280 steps: 2.59 ... 2.03 and 3.14 ... 3.01): the form diffusers writes is second order, the one
    with D2 at full weight third, and each equals the order ``SOLVERS`` states."""
    from ddim_lesson.evaluate.solver_study import scalar_errors

    for solver in ("dpmpp_3m", "dpmpp_3m_exact"):
        errs = scalar_errors(STEPS, solver)
        p = fitted_order(STEPS, errs)
        assert abs(p - dl.SOLVERS[solver].order) < 0.2, (solver, p, errs)
        last = math.log2(errs[-2] / errs[-1])  # the slope between 640 and 1280 steps, closest to the limit
        assert abs(last - dl.SOLVERS[solver].order) < 0.1, (solver, last)


def test_scalar_warmup_of_order_1_caps_the_exact_rung() -> None:
    """With the rungs' own warm-up (an order-1, then an order-2 step) the exact rung's error is larger than with an
    exact warm-up, by more at many steps: the first step's O(h²) error, damped by e^{-6}, starts to show."""
    from ddim_lesson.evaluate.solver_study import scalar_errors

    ex, own = scalar_errors((80, 1280), "dpmpp_3m_exact"), scalar_errors((80, 1280), "dpmpp_3m_exact", "solver")
    assert own[0] / ex[0] < 1.05 < 1.1 < own[1] / ex[1], (ex, own)
    with pytest.raises(ValueError, match="'ralston'"):
        scalar_errors((40,), "dpmpp_3m", warmup="ralston")
    with pytest.raises(ValueError, match="'dpmpp_2m'"):
        scalar_errors((40,), "dpmpp_2m")


def test_scalar_study_catches_a_planted_bug(monkeypatch) -> None:
    """The same check on a planted bug: the exact rung's D2 weight at 1.5 instead of 2 falls back to order 2."""
    from ddim_lesson.core import multistep
    from ddim_lesson.evaluate.solver_study import scalar_errors

    monkeypatch.setitem(multistep.D2_WEIGHT, "dpmpp_3m_exact", 1.5)
    errs = scalar_errors(STEPS, "dpmpp_3m_exact")
    assert abs(math.log2(errs[-2] / errs[-1]) - 2.0) < 0.15, errs


GAUSS_STEPS = (21, 41, 81, 161)


def _last_errors(schedule: dl.NoiseSchedule, solver: str, steps=GAUSS_STEPS) -> list[float]:
    from ddim_lesson.evaluate.solver_study import last_timestep_errors

    x_T = torch.randn(512, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return last_timestep_errors(gaussian_data(schedule), x_T, solver, steps)


def test_last_timestep_orders_on_gaussian_data_on_a_fine_clock() -> None:
    """Before the final jump, on T = 20000 (β scaled by 1000/T): 3M as diffusers writes it fits 2.2 over 21-161
    steps (2.02 between 81 and 161), the exact rung over 4 (pre-asymptotic: above its order, never below 3)."""
    from ddim_lesson.evaluate.solver_study import fine_clock

    fine = fine_clock(20000)
    calls = [n - 1 for n in GAUSS_STEPS]
    e3, ex = _last_errors(fine, "dpmpp_3m"), _last_errors(fine, "dpmpp_3m_exact")
    assert 1.9 < fitted_order(calls, e3) < 2.5 and abs(math.log(e3[-2] / e3[-1]) / math.log(160 / 80) - 2) < 0.15
    assert fitted_order(calls, ex) > 3.5 and all(a < b for a, b in zip(ex, e3)), (ex, e3)
    assert all(math.log(ex[k] / ex[k + 1]) / math.log(calls[k + 1] / calls[k]) > 3 for k in range(3))


def test_the_integer_clock_floors_the_exact_rung_at_T_1000() -> None:
    """At T = 1000 the last integer timesteps are fixed steps in λ (about ½ log((t+2)/(t+1)): 0.39 from t = 1 to 0)
    that do not shrink with N, so the exact rung's error stops falling: 81 -> 161 steps does not lower it, while the
    fine clock's drops over 8x over the same steps."""
    from ddim_lesson.evaluate.solver_study import fine_clock

    coarse = _last_errors(dl.NoiseSchedule.linear(1000), "dpmpp_3m_exact", (81, 161))
    fine = _last_errors(fine_clock(20000), "dpmpp_3m_exact", (81, 161))
    assert coarse[1] > 0.9 * coarse[0] and fine[1] * 8 < fine[0], (coarse, fine)
    ts = dl.ddim_timesteps(1000, 161, "logsnr").tolist()
    assert ts[-3:] == [2, 1, 0]  # the clock's last three ticks are all taken
    for sch in (dl.NoiseSchedule.linear(1000), fine_clock(20000)):  # the last tick is 0.35-0.39 in λ on either clock
        lam = 0.5 * sch.log_snr
        assert 0.34 < float(lam[0] - lam[1]) < 0.40


def test_fine_clock_keeps_the_curve() -> None:
    """The fine clock's log-SNR at t·T/1000 is the course schedule's at t, to 0.1, from t = 1 on; it reaches further
    at t = 0 (β_0 is 20x smaller)."""
    from ddim_lesson.evaluate.solver_study import fine_clock

    a, b = dl.NoiseSchedule.linear(1000).log_snr, fine_clock(20000).log_snr
    for t in (1, 10, 100, 500, 999):
        assert float(b[20 * t + 19]) == pytest.approx(float(a[t]), abs=0.1)
    assert float(b[0] - a[0]) == pytest.approx(math.log(20), abs=0.01)
