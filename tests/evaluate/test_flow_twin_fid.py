"""evaluate.flow_twin_fid: the twin against the ε-model at equal model calls, end to end on tiny random UNets.

Each flow-Euler cell is checked against samples drawn by an independent loop written here from the formulas
(DDIM eq. 12 on the nearest timesteps; Euler in s on s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ))), with planted mistakes that
the same check catches; the ε-model's trailing cells are the solver table's cells.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import CountedNet
from test_evaluate import tiny_unet

import ddim_lesson as dl
from ddim_lesson.evaluate.flow_twin_fid import (
    METHODS,
    PAIRS,
    FlowTwinFIDConfig,
    flow_twin_markdown,
    run_flow_twin_fid,
    uniform_s_timesteps,
)
from ddim_lesson.evaluate.generate import batch_seed, seeded_latents
from ddim_lesson.evaluate.metrics import FeatureStats, classifier_and_sha, features, reference_stats
from ddim_lesson.evaluate.records import md_text
from ddim_lesson.evaluate.solver_fid import SolverFIDConfig, run_solver_fid
from ddim_lesson.nets.models import UNet, UNetConfig

T = 50


def clock() -> dl.NoiseSchedule:
    """A 50-step stand-in clock that, like the shipped one, reaches s ≈ 1 (0.997 at t = 49; T = 50 with the
    default betas stops at s = 0.45, so steps uniform in s would share timesteps)."""
    return dl.NoiseSchedule.linear(T=T, beta_start=1e-3, beta_end=0.4)


def tiny_twin(seed: int = 1) -> UNet:
    """A random UNet that embeds s·T, as a flow model built by train.train_config.make_model does."""
    torch.manual_seed(seed)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2, time_scale=float(T)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _s(abar: float) -> float:
    return math.sqrt(1 - abar) / (math.sqrt(abar) + math.sqrt(1 - abar))


def _x_T(seed: int, n: int, batch: int) -> list[torch.Tensor]:
    """The solver table's x_T of each batch of a cell with this seed."""
    return [seeded_latents(batch_seed(seed, b), min(batch, n - i), (1, 28, 28))
            for b, i in enumerate(range(0, n, batch))]


def _ddim_on(model, abar: list[float], ts: list[int], x: torch.Tensor) -> torch.Tensor:
    """DDIM, η = 0, no clipping (eq. 12), over the given timesteps, the last step to ᾱ = 1."""
    for i, t in enumerate(ts):
        a, a_prev = abar[t], (abar[ts[i + 1]] if i + 1 < len(ts) else 1.0)
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)  # eq. 9
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps  # eq. 12, σ = 0
    return x


def _euler_s(twin, grid: list[float], x: torch.Tensor) -> torch.Tensor:
    for s, s_next in zip(grid[:-1], grid[1:]):
        x = x + (s_next - s) * twin(x, torch.full((x.shape[0],), s))
    return x


def _fid(batches: list[torch.Tensor]) -> float:
    clf = classifier_and_sha()[0]
    return FeatureStats.of(torch.cat([features(x, clf) for x in batches])).distance(reference_stats("test"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    eps, twin, schedule = CountedNet(tiny_unet()), CountedNet(tiny_twin()), clock()
    out = tmp_path_factory.mktemp("ftf") / "ftf"
    cfg = FlowTwinFIDConfig(model="tiny-eps", twin="tiny-twin", nfes=(2, 3), seeds=(0, 1), n=6, batch_size=4,
                            out=str(out))
    res = run_flow_twin_fid(cfg, eps, schedule, twin=twin, log=lambda s: None, progress=False)
    return cfg, eps, twin, schedule, res


def test_every_cell_makes_exactly_nfe_calls_and_a_rerun_resumes(run) -> None:
    cfg, eps, twin, schedule, res = run
    assert set(res["cells"]) == {f"{m} nfe={v} seed={s}" for m in METHODS for v in (2, 3) for s in (0, 1)}
    # 3 methods on the ε-model, 2 on the twin; NFE 2 + 3; 2 batches (4 + 2); 2 seeds
    assert (eps.calls, twin.calls) == (3 * 5 * 2 * 2, 2 * 5 * 2 * 2)
    assert all(c["calls"] == c["nfe"] for c in res["cells"].values())
    eps.reset()
    twin.reset()
    again = run_flow_twin_fid(cfg, eps, schedule, twin=twin, log=lambda s: None, progress=False)
    assert (eps.calls, twin.calls) == (0, 0) and again["cells"] == res["cells"]
    with pytest.raises(ValueError, match="twin_sha256"):  # another twin never mixes into this file
        run_flow_twin_fid(cfg, eps, schedule, twin=tiny_twin(seed=7), log=lambda s: None, progress=False)


def test_eps_trailing_cells_are_the_solver_tables(run, tmp_path) -> None:
    cfg, eps, _, schedule, res = run
    sf = run_solver_fid(SolverFIDConfig(model="tiny-eps", solvers=("ddim", "dpmpp_2m"), spacings=("trailing",),
                                        nfes=(3,), seeds=(1,), n=6, batch_size=4, out=str(tmp_path / "sf")),
                        eps, schedule, log=lambda s: None, progress=False)
    for solver in ("ddim", "dpmpp_2m"):
        assert res["cells"][f"eps-{solver}/trailing nfe=3 seed=1"]["fid"] == \
            sf["cells"][f"{solver} trailing nfe=3 seed=1"]["fid"]


def test_flow_cells_match_independent_loops_and_planted_mistakes_do_not(run) -> None:
    _, eps, twin, schedule, res = run
    abar = schedule.alphas_cumprod.tolist()
    s_tab = [_s(a) for a in abar]
    nfe, seed = 3, 1
    x_T = _x_T(seed, 6, 4)
    near = [min(range(T), key=lambda t: abs(s_tab[t] - (1 - i / nfe))) for i in range(nfe)]  # brute force
    trail = [round(T - i * T / nfe) - 1 for i in range(nfe)]  # trailing spacing, written out
    start = 1 / (math.sqrt(abar[-1]) + math.sqrt(1 - abar[-1]))  # x_s = x_t/(√ᾱ + √(1-ᾱ)) at t = T-1
    with torch.no_grad():
        right = {
            "eps-ddim/uniform-s": _fid([_ddim_on(eps, abar, near, x) for x in x_T]),
            "fm-euler/uniform-s": _fid([_euler_s(twin, [1 - i / nfe for i in range(nfe + 1)], x) for x in x_T]),
            "fm-euler/trailing": _fid([_euler_s(twin, [s_tab[t] for t in trail] + [0.0], start * x) for x in x_T]),
        }
        planted = {  # the ε-model on timesteps uniform in t; the twin on the trailing grid read as s = (t + 1)/T
            "eps-ddim/uniform-s": _fid([_ddim_on(eps, abar, [round((T - 1) * (1 - i / nfe)) for i in range(nfe)], x)
                                        for x in x_T]),
            "fm-euler/trailing": _fid([_euler_s(twin, [(t + 1) / T for t in trail] + [0.0], start * x) for x in x_T]),
        }
    for m, want in right.items():
        got = res["cells"][f"{m} nfe={nfe} seed={seed}"]["fid"]
        assert abs(got - want) < 1e-3, (m, got, want)  # the record rounds to 4 decimals; float32 round-off
    for m, wrong in planted.items():
        assert abs(res["cells"][f"{m} nfe={nfe} seed={seed}"]["fid"] - wrong) > 0.05, m  # measured: 0.13 and 0.52


def test_uniform_s_timesteps_are_the_nearest_and_distinct() -> None:
    sched = dl.NoiseSchedule.linear()
    s_tab = torch.tensor([_s(a) for a in sched.alphas_cumprod.tolist()], dtype=torch.float64)
    for n in (5, 10, 20):
        ts = uniform_s_timesteps(sched, n)
        want = 1 - torch.arange(n, dtype=torch.float64) / n
        brute = (s_tab[None, :] - want[:, None]).abs().argmin(1)
        assert torch.equal(ts, brute) and int(ts[0]) == 999 and bool((ts[1:] < ts[:-1]).all())
        linear_t = torch.round(999 * want).long()  # the planted mistake: uniform in t, not in s
        assert not torch.equal(ts, linear_t)
    with pytest.raises(ValueError, match="share timesteps"):
        uniform_s_timesteps(dl.NoiseSchedule.linear(T=20), 20)
    with pytest.raises(ValueError, match="steps"):
        uniform_s_timesteps(sched, 0)


def test_swapped_models_are_refused(tmp_path) -> None:
    schedule = clock()
    cfg = FlowTwinFIDConfig(nfes=(2,), seeds=(0,), n=4, batch_size=4, out=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="--twin must be a model trained with objective 'flow'"):
        run_flow_twin_fid(cfg, tiny_unet(), schedule, twin=tiny_unet(), log=lambda s: None, progress=False)
    with pytest.raises(ValueError, match="--model must be a model trained with objective 'eps'"):
        run_flow_twin_fid(cfg, tiny_twin(), schedule, twin=tiny_twin(), log=lambda s: None, progress=False)
    assert not (tmp_path / "x.json").exists()


def test_markdown_pairs_seed_by_seed_and_escapes(run) -> None:
    cfg, _, _, _, res = run
    doc = json.loads(json.dumps(res))
    doc["twin"]["spec"] = "<script>x</script>|`"
    md = flow_twin_markdown(doc)
    assert "<script>" not in md and "&lt;script&gt;" in md
    for a, b, why in PAIRS:
        d = [res["cells"][f"{a} nfe=3 seed={s}"]["fid"] - res["cells"][f"{b} nfe=3 seed={s}"]["fid"] for s in (0, 1)]
        assert f"{sum(d) / 2:+.2f} ({d[0]:+.2f}, {d[1]:+.2f})" in md, (a, b)
        assert f"| {a} − {b} | {md_text(why)} |" in md
    assert "no 2nd-order flow solver" in md
    with open(f"{cfg.out}.md") as f:
        assert f.read().startswith("# The flow-matching twin")


@pytest.mark.parametrize("kwargs,match", [
    ({"methods": ("fm-heun/uniform-s",)}, "'fm-heun/uniform-s'"), ({"nfes": (0,)}, "nfe"), ({"n": 1}, "n must"),
    ({"seeds": ()}, "at least one"),
])  # fmt: skip
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FlowTwinFIDConfig(**kwargs)


def test_cli_reports_a_bad_value_in_one_line(capsys) -> None:
    from ddim_lesson.cli.table_commands import script_main

    with pytest.raises(SystemExit) as e:
        script_main("flow twin FID", "flow_twin_fid", ["--nfes", "0", "--no-progress"])
    assert e.value.code == 2 and "nfe" in capsys.readouterr().err


def test_the_script_runs_on_checkpoints_and_reads_each_models_objective(tmp_path, capsys) -> None:
    """The command the README gives, on two tiny checkpoints: the twin's recorded objective is what admits it."""
    from ddim_lesson.cli.table_commands import script_main
    from ddim_lesson.store.checkpoints import save_model

    save_model(tmp_path / "eps", tiny_unet(), clock(), train_config={"objective": "eps"}, steps=3)
    save_model(tmp_path / "fm", tiny_twin(), clock(), train_config={"objective": "flow"}, steps=5,
               command="ddim-lesson train --objective flow")
    out = tmp_path / "res"
    argv = ["--model", str(tmp_path / "eps"), "--twin", str(tmp_path / "fm"), "--nfes", "2", "--seeds", "0", "--n",
            "4", "--batch-size", "4", "--threads", "1", "--no-progress", "--out", str(out)]
    script_main("flow twin FID", "flow_twin_fid", argv)
    res = json.loads(out.with_suffix(".json").read_text())
    assert len(res["cells"]) == len(METHODS) and res["twin"]["train_steps"] == 5
    assert "ddim-lesson train --objective flow" in out.with_suffix(".md").read_text()
    assert "| fm-euler/uniform-s |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # the ε-model given as the twin: one line, naming the flag
        script_main("flow twin FID", "flow_twin_fid", argv[:3] + [str(tmp_path / "eps")] + argv[4:-1] +
                    [str(tmp_path / "other")])
    assert e.value.code == 2 and "--twin must be a model trained with objective 'flow'" in capsys.readouterr().err
