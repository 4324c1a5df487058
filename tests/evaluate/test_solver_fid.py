"""evaluate.solver_fid: FID at equal model calls, end to end on a tiny random UNet with tiny sample counts."""

from __future__ import annotations

import pytest
from conftest import CountedNet
from test_evaluate import tiny_unet

import ddim_lesson as dl
from ddim_lesson.evaluate import Table1Config, run_table1
from ddim_lesson.evaluate.solver_fid import SolverFIDConfig, best_spacing, run_solver_fid, solver_fid_markdown


# -- the FID runner --------------------------------------------------------------------------------------
def test_solver_fid_runs_resumes_and_its_ddim_cell_is_table1s(tmp_path) -> None:
    """With clip_x0 the ddim cell is Table 1's η = 0 cell bit for bit (same x_T per seed and batch)."""
    model, schedule = CountedNet(tiny_unet()), dl.NoiseSchedule.linear(T=50)
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
    model.reset()
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
    from ddim_lesson.cli.table_commands import script_main

    with pytest.raises(SystemExit) as e:
        script_main("solver FID", "solver_fid", ["--solvers", "euler", "--no-progress"])
    assert e.value.code == 2 and "'euler'" in capsys.readouterr().err


def test_adding_a_rung_computes_only_its_cells(tmp_path) -> None:
    """How the committed table gained dpmpp_3m_exact: the same --out with one more solver keeps every old cell
    (bit for bit) and spends model calls on the new rung's cells only; the Markdown then has its rows."""
    model, schedule = CountedNet(tiny_unet()), dl.NoiseSchedule.linear(T=50)
    kw = dict(model="tiny", spacings=("trailing",), nfes=(3, 4), seeds=(0, 1), n=4, batch_size=4,
              out=str(tmp_path / "sf"))
    old = run_solver_fid(SolverFIDConfig(solvers=("ddim", "dpmpp_3m"), **kw), model, schedule, log=lambda s: None,
                         progress=False)
    model.reset()
    new = run_solver_fid(SolverFIDConfig(solvers=("ddim", "dpmpp_3m", "dpmpp_3m_exact"), **kw), model, schedule,
                         log=lambda s: None, progress=False)
    assert model.calls == (3 + 4) * 2  # two budgets, two seeds, one batch each: the new rung only
    assert {k: v for k, v in new["cells"].items() if k in old["cells"]} == old["cells"]
    assert len(new["cells"]) == len(old["cells"]) + 4 and "| dpmpp_3m_exact | trailing |" in solver_fid_markdown(new)
