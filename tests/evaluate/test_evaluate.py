"""The Table 1 / Table 2 runners, end to end on a tiny random UNet with tiny sample counts."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
from conftest import CountedNet
from torch import nn

from ddim_lesson import NoiseSchedule, ddim_invert, ddim_sample
from ddim_lesson.cli.table_commands import add_eval_args, cmd_eval
from ddim_lesson.evaluate import (
    SIGMA_HAT,
    Table1Config,
    Table2Config,
    model_sha256,
    run_table1,
    run_table2,
)
from ddim_lesson.nets.models import UNet, UNetConfig
from ddim_lesson.store.checkpoints import save_model


def tiny_unet(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2))
    with torch.no_grad():  # the zero-initialised output layers would make eps = 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_table1_runs_end_to_end_writes_json_and_markdown_and_resumes(tmp_path):
    model, schedule = CountedNet(tiny_unet()), NoiseSchedule.linear(T=50)
    cfg = Table1Config(model="tiny", steps=(2, 3), etas=(0.0, 1.0), sigma_hat=True, n=6, n_at={3: 4},
                       batch_size=4, floor=False, out=str(tmp_path / "t1.small"))
    res = run_table1(cfg, model, schedule, log=lambda s: None)
    # S=2: 3 rows x 2 batches (4 + 2) x 2 calls; S=3: 3 rows x 1 batch x 3 calls
    assert model.calls == 3 * 2 * 2 + 3 * 1 * 3
    saved = json.loads((tmp_path / "t1.small.json").read_text())
    assert saved["cells"] == res["cells"]
    assert set(saved["cells"]) == {"eta=0.0 S=2", "eta=1.0 S=2", "sigma_hat S=2",
                                   "eta=0.0 S=3", "eta=1.0 S=3", "sigma_hat S=3"}
    for c in saved["cells"].values():
        assert math.isfinite(c["fid"]) and c["fid"] > 0 and c["seconds_per_image"] > 0
        assert c["n"] == (4 if c["steps"] == 3 else 6)
    assert saved["model"]["sha256"] == model_sha256(model)
    assert {"platform", "cpu_count", "torch"} <= set(saved["machine"])
    assert "git_commit" in saved
    md = (tmp_path / "t1.small.md").read_text()
    assert "| η = 0 |" in md and "| σ̂ (σ² = β) |" in md and "S = 3" in md and "(n=4)" in md
    assert "| seconds per image |" in md

    model.reset()
    run_table1(cfg, model, schedule, log=lambda s: None)  # every cell is done: nothing is sampled again
    assert model.calls == 0
    with pytest.raises(ValueError, match="seed"):
        run_table1(Table1Config(**{**cfg.__dict__, "seed": 1}), model, schedule, log=lambda s: None)


def test_table1_cells_share_x_T_so_eta0_is_reproducible(tmp_path):
    from ddim_lesson.evaluate import sample_cell

    model, schedule = tiny_unet(), NoiseSchedule.linear(T=50)
    f1, _ = sample_cell(model, schedule, 0.0, 3, 5, 2, 7, "trailing")
    f2, _ = sample_cell(model, schedule, 0.0, 3, 5, 4, 7, "trailing")  # other batch size, other x_T batches
    f3, _ = sample_cell(model, schedule, 0.0, 3, 5, 2, 7, "trailing")
    f4, _ = sample_cell(model, schedule, 0.0, 3, 5, 2, 7, "trailing", sigma_hat=True)
    assert f1.shape == (5, 128)
    assert torch.equal(f1, f3)
    assert not torch.allclose(f1, f2) and not torch.allclose(f1, f4)


def test_table2_mse_equals_a_direct_computation(tmp_path):
    model, schedule = tiny_unet(1), NoiseSchedule.linear(T=50)
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cfg = Table2Config(model="tiny", steps=(2, 5), n=5, batch_size=3, out=str(tmp_path / "t2"))
    res = run_table2(cfg, model, schedule, images=images, log=lambda s: None)
    rec = ddim_sample(model, schedule, ddim_invert(model, schedule, images, steps=5), steps=5, clip_x0=False)
    want = float(((rec - images).double() ** 2).mean())
    assert res["cells"]["S=5"]["mse"] == pytest.approx(want, rel=1e-5)
    assert res["cells"]["S=5"]["mse_unit_range"] == pytest.approx(want / 4, rel=1e-5)
    md = (tmp_path / "t2.md").read_text()
    assert "S = 2" in md and "S = 5" in md and "MSE" in md
    assert json.loads((tmp_path / "t2.json").read_text())["cells"].keys() == {"S=2", "S=5"}


class IdealDenoiser(nn.Module):
    """The exact eps for data that is one image x*: eps = (x_t - √ᾱ_t x*)/√(1-ᾱ_t)."""

    def __init__(self, x_star: torch.Tensor, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.register_buffer("x_star", x_star)
        self.register_buffer("abar", schedule.alphas_cumprod.float())
        self.config = UNetConfig()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x_star) / (1 - a).sqrt()


def test_table2_reconstruction_is_exact_with_the_ideal_denoiser(tmp_path):
    schedule = NoiseSchedule.linear(T=100)
    x_star = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 1.8 - 0.9
    cfg = Table2Config(model="ideal", steps=(3, 10), n=2, out=str(tmp_path / "t2"))
    res = run_table2(cfg, IdealDenoiser(x_star, schedule), schedule, images=x_star.repeat(2, 1, 1, 1),
                     log=lambda s: None)
    assert all(c["mse"] < 1e-9 for c in res["cells"].values())


def test_cmd_eval_runs_table1_from_a_checkpoint(tmp_path, capsys):
    schedule = NoiseSchedule.linear(T=20)
    save_model(tmp_path / "tiny", tiny_unet(2), schedule)
    p = argparse.ArgumentParser()
    add_eval_args(p)
    args = p.parse_args(["table1", "--model", str(tmp_path / "tiny"), "--steps", "2", "--etas", "0",
                         "--no-sigma-hat", "--n", "3", "--no-floor", "--out", str(tmp_path / "r")])
    cmd_eval(args)
    out = capsys.readouterr().out
    assert "| η = 0 |" in out and "r.json" in out
    assert json.loads((tmp_path / "r.json").read_text())["cells"]["eta=0.0 S=2"]["n"] == 3


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        Table1Config(n=1)
    with pytest.raises(ValueError, match="etas"):
        Table1Config(etas=(-0.5,))
    with pytest.raises(ValueError, match="n_at"):
        Table1Config(n_at={1000: 0})
    with pytest.raises(ValueError, match="batch_size"):
        Table2Config(batch_size=0)


def test_spread_seed_0_is_table1s_cell_and_sd_is_the_sample_sd(tmp_path):
    """run_spread re-samples cells per seed; its seed-0 FID is Table 1's own cell, bit for bit."""
    import statistics

    from ddim_lesson.evaluate import SpreadConfig, run_spread, spread_markdown

    model, schedule = CountedNet(tiny_unet()), NoiseSchedule.linear(T=50)
    real = torch.rand(40, 1, 28, 28) * 2 - 1
    cfg = SpreadConfig(model="tiny", cells=((0.0, 2), (SIGMA_HAT, 3), (1.0, 2)), seeds=(0, 1, 2), n=6, batch_size=4,
                       out=str(tmp_path / "spread"))
    res = run_spread(cfg, model, schedule, real_images=real, log=lambda s: None)
    assert model.calls == 3 * 2 * (2 + 3 + 2)  # 3 seeds x 2 batches x S calls, per cell
    t1 = run_table1(Table1Config(model="tiny", steps=(2, 3), etas=(0.0,), n=6, batch_size=4, floor=False,
                                 out=str(tmp_path / "t1")), model, schedule, log=lambda s: None)
    assert res["cells"]["eta=0.0 S=2 seed=0"]["fid"] == t1["cells"]["eta=0.0 S=2"]["fid"]
    assert res["cells"]["sigma_hat S=3 seed=0"]["fid"] == t1["cells"]["sigma_hat S=3"]["fid"]
    fids = [res["cells"][f"eta=0.0 S=2 seed={s}"]["fid"] for s in (0, 1, 2)]
    assert len(set(fids)) == 3  # other seeds, other samples
    assert len(res["real"]) == 3 and len(set(res["real"])) == 3
    md = spread_markdown(res)
    row = next(line for line in md.splitlines() if line.startswith("| η = 0, S = 2 |"))
    assert row.endswith(f"| {statistics.fmean(fids):.2f} | {statistics.stdev(fids):.2f} |")
    assert "| σ̂, S = 3 |" in md and "| real held-out images (disjoint sets) |" in md
    diffs = [fids[s] - res["cells"][f"eta=1.0 S=2 seed={s}"]["fid"] for s in (0, 1, 2)]  # same S: paired by seed
    row = next(line for line in md.splitlines() if line.startswith("| difference (η = 0) − (η = 1), S = 2 |"))
    assert row.endswith(f"| {statistics.fmean(diffs):.2f} | {statistics.stdev(diffs):.2f} |")
    assert "(σ̂) −" not in md and "− (σ̂)" not in md  # σ̂ has no partner at S = 3

    model.reset()
    again = run_spread(cfg, model, schedule, real_images=real, log=lambda s: None)  # resumes: nothing to do
    assert model.calls == 0 and again["cells"] == res["cells"]


def test_spread_config_rejects_bad_values():
    from ddim_lesson.evaluate import SpreadConfig, run_spread

    with pytest.raises(ValueError, match="seeds must hold at least 2"):
        SpreadConfig(seeds=(3, 3))
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        SpreadConfig(n=1)
    with pytest.raises(ValueError, match="cells"):
        SpreadConfig(cells=())
    cfg = SpreadConfig(model="tiny", cells=((0.0, 2),), seeds=(0, 1), n=6, batch_size=4, out="/nonexistent/x")
    with pytest.raises(ValueError, match="need 12 images, got 10"):
        run_spread(cfg, tiny_unet(), NoiseSchedule.linear(T=50), real_images=torch.zeros(10, 1, 28, 28),
                   log=lambda s: None)


def test_eval_spread_parses_cells_and_rejects_bad_values_in_one_line(capsys):
    from ddim_lesson.cli.flags import OneLineParser
    from ddim_lesson.cli.main import main
    from ddim_lesson.cli.table_commands import add_table_args, config_from_args

    p = OneLineParser(prog="spread")
    add_table_args(p, "spread")
    cfg = config_from_args(p.parse_args(["--cells", "0:10,1:50,sigma_hat:100"]))
    assert cfg.cells == ((0.0, 10), (1.0, 50), (SIGMA_HAT, 100))
    for argv, msg in ((["--seeds", "4"], "seeds must hold at least 2 different seeds to measure a spread, got (4,)"),
                      (["--steps", "10"], "--steps is for table1 and table2; the spread takes --cells ETA:S pairs"),
                      (["--cells", "0-10"], "expected ETA:S pairs like 0:10"),
                      (["--cells", "x:10"], "got 'x:10'"),
                      (["--cells", "0:10,0:ten"], "bad item '0:ten'")):
        assert main(["eval", "spread", *argv, "--out", "/nonexistent/x"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err


def test_benchmark_scripts_turn_a_bad_value_into_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fid_spread.py"
    r = subprocess.run([sys.executable, str(script), "--seeds", "1", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("seeds must hold at least 2 different seeds to measure a "
                                                      "spread, got (1,)")


def test_runners_show_a_progress_bar_over_model_calls(tmp_path, capsys):
    model, schedule = CountedNet(tiny_unet()), NoiseSchedule.linear(T=50)
    cfg = Table1Config(model="tiny", steps=(2, 3), etas=(0.0,), sigma_hat=False, n=6, batch_size=4, floor=False,
                       out=str(tmp_path / "t1"))
    run_table1(cfg, model, schedule, log=lambda s: None)
    err = capsys.readouterr().err
    assert model.calls == 2 * 2 + 2 * 3 and "table1" in err and f"{model.calls}/{model.calls}" in err
    model.reset()
    run_table2(Table2Config(model="tiny", steps=(2,), n=3, batch_size=2, out=str(tmp_path / "t2")), model, schedule,
               images=torch.zeros(3, 1, 28, 28), log=lambda s: None, progress=False)
    assert model.calls == 2 * 2 * 2 and capsys.readouterr().err == ""  # 2 batches x (invert + sample) x S


def test_channels_last_only_moves_samples_by_rounding_and_gives_the_weights_back():
    from ddim_lesson.evaluate.generate import channels_last
    from ddim_lesson.evaluate.generate import sample_batch as _sample_batch

    model, schedule = tiny_unet(), NoiseSchedule.linear(T=50)
    conv = next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1)  # C = 1 is both layouts
    plain, _ = _sample_batch(model, schedule, 0.5, 4, (3, 1, 28, 28), 7, "trailing", "cpu")
    with channels_last(model):
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
        fast, _ = _sample_batch(model, schedule, 0.5, 4, (3, 1, 28, 28), 7, "trailing", "cpu")
    assert conv.is_contiguous()
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="boom"), channels_last(model):
        raise RuntimeError("boom")
    assert all(p.is_contiguous() for p in model.parameters())


def test_table1_markdown_says_which_cells_ran_in_channels_last_when_the_table_mixes_them(tmp_path):
    from ddim_lesson.evaluate import table1_markdown

    model, schedule = tiny_unet(), NoiseSchedule.linear(T=50)
    cfg = Table1Config(model="tiny", steps=(2, 3), etas=(0.0,), sigma_hat=False, n=4, batch_size=4, floor=False,
                       out=str(tmp_path / "t1"))
    res = run_table1(cfg, model, schedule, log=lambda s: None, progress=False)
    assert "channels_last" not in table1_markdown(res)  # all cells alike: nothing to say
    del res["cells"]["eta=0.0 S=2"]["channels_last"]  # as if measured before the layout changed
    assert "The cells eta=0.0 S=3 ran the model with its weights in channels_last" in table1_markdown(res)
    res["notes"] = ["the S = 3 cells ran two at a time"]  # a run's own remark, kept in the JSON
    assert "Note: the S = 3 cells ran two at a time" in table1_markdown(res)


@pytest.mark.parametrize("row", [0.0, 0.5, SIGMA_HAT])
def test_a_table_batch_is_exactly_ddim_sample_or_ddpm_sample_and_reports_every_call(row):
    from ddim_lesson import ddpm_sample
    from ddim_lesson.evaluate.generate import row_sampler
    from ddim_lesson.evaluate.generate import sample_batch as _sample_batch

    model, schedule = tiny_unet(), NoiseSchedule.linear(T=50)
    ticks = []
    eta, sigma_hat = row_sampler(row)  # the one place a row label becomes sampler arguments
    assert isinstance(eta, float) and sigma_hat == (row == SIGMA_HAT)
    x0, secs = _sample_batch(model, schedule, eta, 5, (3, 1, 28, 28), 11, "trailing", "cpu", ticks.append,
                             sigma_hat=sigma_hat)
    x_T = torch.randn((3, 1, 28, 28), generator=torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11 + 1_000_000_007)
    if row == SIGMA_HAT:
        ref = ddpm_sample(model, schedule, x_T, generator=g, variance="beta", steps=5, spacing="trailing")
    else:
        ref = ddim_sample(model, schedule, x_T, steps=5, eta=row, spacing="trailing", generator=g)
    assert torch.equal(x0, ref) and ticks == [1] * 5 and secs > 0
