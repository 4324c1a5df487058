"""The spacing table records the timesteps its cells visit: those of the model's own schedule (a cosine model
starts below T - 1 and its log-SNR grid is its own), not the linear schedule's grid for the same T."""

from __future__ import annotations

import torch
from torch import nn

from ddim_lesson import NoiseSchedule
from ddim_lesson.core.schedules import ddim_timesteps
from ddim_lesson.evaluate.spacing_fid import SpacingFIDConfig, run_spacing_fid
from ddim_lesson.nets.models import UNet, UNetConfig


class Visits(nn.Module):
    """A model wrapper that keeps the timestep of each call (and the inner model's config)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.config, self.ts = inner, inner.config, []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.ts.append(int(t[0]))
        return self.inner(x, t)


def test_recorded_timesteps_are_the_ones_a_cosine_model_is_sampled_at(tmp_path):
    torch.manual_seed(0)
    model = Visits(UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2)).eval())
    cosine, steps = NoiseSchedule.cosine(T=50), 3
    cfg = SpacingFIDConfig(model="tiny", spacings=("logsnr", "trailing"), baseline="trailing", steps=steps,
                           seeds=(0, 1), n=2, batch_size=2, out=str(tmp_path / "sp"))
    res = run_spacing_fid(cfg, model, cosine, log=lambda s: None, progress=False)
    visited = {sp: model.ts[k * steps:(k + 1) * steps] for k, sp in enumerate(cfg.spacings)}  # seed 0's cells
    for sp in cfg.spacings:
        assert res["timesteps"][sp] == visited[sp], sp  # what the table says is what the sampler did
        assert res["timesteps"][sp] == ddim_timesteps(cosine.T, steps, sp, schedule=cosine).tolist()
    # the check can fail: without the schedule both grids differ from the visited ones (linear log-SNR, start 49)
    assert ddim_timesteps(cosine.T, steps, "logsnr").tolist() != visited["logsnr"]
    assert ddim_timesteps(cosine.T, steps, "trailing").tolist() != visited["trailing"]
