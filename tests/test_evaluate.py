"""The Table 1 / Table 2 runners, end to end on a tiny random UNet with tiny sample counts."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
from torch import nn

from ddim_lesson import NoiseSchedule, ddim_invert, ddim_sample
from ddim_lesson.checkpoints import save_model
from ddim_lesson.evaluate import (
    SIGMA_HAT,
    Table1Config,
    Table2Config,
    add_eval_args,
    cmd_eval,
    model_sha256,
    run_table1,
    run_table2,
)
from ddim_lesson.models import UNet, UNetConfig


class Counted(nn.Module):
    """A model wrapper that counts forward calls (and keeps the inner model's config and weights)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.config, self.calls = inner, inner.config, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x, t)


def tiny_unet(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2))
    with torch.no_grad():  # the zero-initialised output layers would make eps = 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_table1_runs_end_to_end_writes_json_and_markdown_and_resumes(tmp_path):
    model, schedule = Counted(tiny_unet()), NoiseSchedule.linear(T=50)
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

    model.calls = 0
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
    f4, _ = sample_cell(model, schedule, SIGMA_HAT, 3, 5, 2, 7, "trailing")
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
