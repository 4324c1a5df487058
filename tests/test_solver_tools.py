"""Notebook 06's tools: the Heun exercise checker, the Gaussian study helpers, the solver explorer
and the FID-at-equal-NFE runner (end to end on a tiny random UNet with tiny sample counts)."""

from __future__ import annotations

import math

import pytest
import torch
from test_evaluate import Counted, tiny_unet

import ddim_lesson as dl
from ddim_lesson.course.exercises import solvers as ex
from ddim_lesson.course.widgets.solver import solver_explorer
from ddim_lesson.evaluate import Table1Config, run_table1
from ddim_lesson.evaluate.solver_fid import SolverFIDConfig, best_spacing, run_solver_fid, solver_fid_markdown
from ddim_lesson.evaluate.solver_study import fitted_order, gaussian_data, step_errors


# -- the exercise checker ---------------------------------------------------------------------------
def _step(kind: str):
    """A learner's Heun step with one planted mistake (``right``: none)."""
    def fn(x, s, sn, f):
        h = sn - s
        d = f(x, s)
        p = x + h * d
        if kind == "typo":
            return x + h * f(x)
        if kind == "euler" or (sn == 0 and kind != "always_correct"):
            return p
        if kind == "wrong_sigma":
            return x + h * 0.5 * (d + f(p, s))
        if kind == "wrong_point":
            return x + h * 0.5 * (d + f(x, sn))
        if kind == "end_only":
            return x + h * f(p, sn)
        if kind == "three_calls":
            f(x, s)
        return x + h * 0.5 * (d + f(p, sn))  # right, always_correct, three_calls
    return fn


def test_checker_accepts_the_reference_and_a_correct_step(capsys) -> None:
    assert ex.check_heun_step(ex.reference_heun_step) and ex.check_heun_step(_step("right"))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("kind,hint", [
    ("euler", "Euler"), ("wrong_sigma", "wrong noise level"), ("wrong_point", "old point"),
    ("end_only", "only the end slope"), ("always_correct", "skip the corrector"), ("three_calls", "exactly 2"),
    ("typo", "raised TypeError"),
])  # fmt: skip
def test_checker_names_the_usual_mistakes(kind: str, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        ex.check_heun_step(_step(kind))


def test_checker_says_not_attempted(capsys) -> None:
    def todo(*_):
        raise NotImplementedError

    assert ex.check_heun_step(todo) is False
    assert "not attempted" in capsys.readouterr().out


def test_reference_heun_step_is_the_library_step() -> None:
    """One grid step of sample_heun equals the exercise's reference step with slope = ε at the grid points."""
    sch = dl.NoiseSchedule.linear(1000)
    data = gaussian_data(sch)
    x_T = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = dl.core.solvers.make_grid(sch, 4, "trailing")
    t_of = {s: t for s, t in zip(grid.sigma, grid.ts)}

    def slope(xbar, sigma):
        return data.eps(xbar * math.sqrt(1 / (1 + sigma**2)), torch.full((xbar.shape[0],), t_of[sigma]))

    first = next(iter(dl.ode_progressive(data.eps, sch, x_T, steps=7, solver="heun")))
    xbar1 = ex.reference_heun_step(x_T / grid.scale(0), grid.sigma[0], grid.sigma[1], slope)
    assert float((first.x - xbar1 * grid.scale(1)).abs().max()) < 1e-10


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


# -- the explorer --------------------------------------------------------------------------------------
def test_solver_explorer_runs_caches_and_says_what_heun_spent(counting) -> None:
    sch = dl.NoiseSchedule.linear(1000)
    data = gaussian_data(sch)
    x_T = torch.randn(4, 1, 1, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def model(x, t):  # (B, 1, 1, 3) images of 3 pixels
        return data.eps(x.view(-1, 3), t).view_as(x)

    ref = data.solution(x_T.view(-1, 3)).view_as(x_T)
    m = counting(model)
    e = solver_explorer(m, sch, x_T, ref, solver="dpmpp_2m", nfe=10, spacing="logsnr")
    assert m.calls == 10 and e.last.calls == 10 and e.image.value[:4] == b"\x89PNG"
    first = e.last.error
    e.nfe.value = 30
    assert e.last.error < first and "NFE = 30" in e.readout.value
    e.solver.value = "heun"
    assert e.last.calls == 29 and "cannot be spent exactly" in e.readout.value
    calls = m.calls
    e.solver.value, e.nfe.value = "dpmpp_2m", 10
    assert m.calls == calls and "from cache" in e.readout.value and e.last.error == first
    with pytest.raises(ValueError, match="'rk4'"):
        solver_explorer(model, sch, x_T, ref, solver="rk4")
    with pytest.raises(ValueError, match="shape"):
        solver_explorer(model, sch, x_T, ref[:2])


# -- the FID runner --------------------------------------------------------------------------------------
def test_solver_fid_runs_resumes_and_its_ddim_cell_is_table1s(tmp_path) -> None:
    """With clip_x0 the ddim cell is Table 1's η = 0 cell bit for bit (same x_T per seed and batch)."""
    model, schedule = Counted(tiny_unet()), dl.NoiseSchedule.linear(T=50)
    cfg = SolverFIDConfig(model="tiny", solvers=("ddim", "heun"), spacings=("trailing",), nfes=(2, 3), seeds=(0, 1),
                          n=6, batch_size=4, clip_x0=True, out=str(tmp_path / "sf"))
    res = run_solver_fid(cfg, model, schedule, log=lambda s: None, progress=False)
    # ddim 2 + 3 calls, heun 1 + 3 calls (odd counts within the budgets), 2 batches, 2 seeds
    assert model.calls == (2 + 3 + 1 + 3) * 2 * 2
    assert res["cells"]["heun trailing nfe=2 seed=0"]["calls"] == 1
    t1 = run_table1(Table1Config(model="tiny", steps=(2,), etas=(0.0,), sigma_hat=False, n=6, batch_size=4,
                                 floor=False, out=str(tmp_path / "t1")), model, schedule, log=lambda s: None,
                    progress=False)
    assert res["cells"]["ddim trailing nfe=2 seed=0"]["fid"] == t1["cells"]["eta=0.0 S=2"]["fid"]
    md = solver_fid_markdown(res)
    assert "| heun | trailing |" in md and "(1)" in md and "lower in" in md
    assert set(best_spacing(res).values()) == {"trailing"}
    model.calls = 0
    again = run_solver_fid(cfg, model, schedule, log=lambda s: None, progress=False)
    assert model.calls == 0 and again["cells"] == res["cells"]


@pytest.mark.parametrize("kwargs,match", [
    ({"solvers": ("euler",)}, "'euler'"), ({"spacings": ("cosine",)}, "'cosine'"), ({"nfes": (0,)}, "nfe"),
    ({"n": 1}, "n must"), ({"seeds": ()}, "at least one"),
])  # fmt: skip
def test_solver_fid_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SolverFIDConfig(**kwargs)


def test_solver_fid_cli_reports_a_bad_value_in_one_line(capsys) -> None:
    from ddim_lesson.cli.cli_eval import script_main

    with pytest.raises(SystemExit) as e:
        script_main("solver FID", "solver_fid", ["--solvers", "euler", "--no-progress"])
    assert e.value.code == 2 and "'euler'" in capsys.readouterr().err
