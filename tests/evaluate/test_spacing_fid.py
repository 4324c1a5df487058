"""FID per timestep spacing (ddim_lesson.evaluate.spacing_fid), end to end on a tiny random UNet, tiny sample counts."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from conftest import CountedNet

from ddim_lesson import NoiseSchedule, ddim_sample
from ddim_lesson.cli.table_commands import script_main
from ddim_lesson.evaluate import SpreadConfig, run_spread
from ddim_lesson.evaluate.metrics import FeatureStats, features, reference_stats
from ddim_lesson.evaluate.spacing_fid import (
    SpacingFIDConfig,
    run_spacing_fid,
    spacing_fid_markdown,
    spacing_summary,
)
from ddim_lesson.nets.models import UNet, UNetConfig

QUIET = {"log": lambda s: None, "progress": False}


def tiny_unet(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2))
    with torch.no_grad():  # the zero-initialised output layers would make eps = 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def small_cfg(tmp_path, **kw) -> SpacingFIDConfig:
    args = dict(model="tiny", steps=3, seeds=(0, 1, 2), n=6, batch_size=4, out=str(tmp_path / "sp"))
    return SpacingFIDConfig(**(args | kw))


def test_every_cell_is_ddim_sample_with_its_spacing_from_table1s_x_T(tmp_path):
    """A cell's FID equals one computed here from ddim_sample with that spacing and x_T seeded as Table 1 seeds it."""
    model, schedule = CountedNet(tiny_unet()), NoiseSchedule.linear(T=50)
    cfg = small_cfg(tmp_path)
    res = run_spacing_fid(cfg, model, schedule, **QUIET)
    assert model.calls == 4 * 3 * 2 * 3  # 4 spacings x 3 seeds x 2 batches x S calls
    ref = reference_stats("test")
    for spacing, seed in (("leading", 2), ("quadratic", 0)):
        x0 = [ddim_sample(model.inner, schedule, torch.randn(b, 1, 28, 28, generator=torch.Generator().manual_seed(
            seed * 100_003 + i)), steps=3, eta=0.0, spacing=spacing) for i, b in enumerate((4, 2))]
        direct = FeatureStats.of(features(torch.cat(x0))).distance(ref)
        assert res["cells"][f"{spacing} seed={seed}"]["fid"] == pytest.approx(direct, rel=1e-3, abs=1e-3)
    assert res["timesteps"]["trailing"][0] == 49 and res["timesteps"]["leading"][0] == 32
    assert len({res["cells"][f"{sp} seed=0"]["fid"] for sp in cfg.spacings}) == 4  # the spacing is honoured

    model.reset()
    again = run_spacing_fid(cfg, model, schedule, **QUIET)  # resumes: nothing left to do
    assert model.calls == 0 and again["cells"] == res["cells"]
    assert json.loads((tmp_path / "sp.json").read_text())["cells"] == res["cells"]


def test_trailing_cells_repeat_the_seed_spreads_cells(tmp_path):
    """Seed k's x_T is the seed spread's (and Table 1's): the trailing cells reproduce its η = 0 cells bit for bit."""
    model, schedule = tiny_unet(), NoiseSchedule.linear(T=50)
    res = run_spacing_fid(small_cfg(tmp_path, spacings=("trailing", "leading")), model, schedule, **QUIET)
    spread = run_spread(SpreadConfig(model="tiny", cells=((0.0, 3),), seeds=(0, 1, 2), n=6, batch_size=4,
                                     real=False, out=str(tmp_path / "spread")), model, schedule, **QUIET)
    for seed in (0, 1, 2):
        assert res["cells"][f"trailing seed={seed}"]["fid"] == spread["cells"][f"eta=0.0 S=3 seed={seed}"]["fid"]


def test_summary_and_markdown_read_each_spacing_against_the_baseline_seed_by_seed():
    fid = {("trailing", 0): 10.0, ("trailing", 1): 12.0, ("trailing", 2): 11.0,
           ("leading", 0): 13.0, ("leading", 1): 12.5, ("leading", 2): 10.0}
    res = {"config": {"baseline": "trailing", "spacings": ["leading", "trailing"], "steps": 10, "eta": 0.0, "n": 6,
                      "device": "cpu"},
           "cells": {f"{sp} seed={s}": {"spacing": sp, "seed": s, "fid": v} for (sp, s), v in fid.items()},
           "timesteps": {"leading": [900, 0], "trailing": [999, 99]}, "reference": {"n": 10000},
           "model": {"spec": "tiny", "sha256": "0" * 64},
           "machine": {"platform": "p", "processor": "x", "cpu_count": 2, "torch_threads": 1, "torch": "2"},
           "git_commit": "abc"}
    summ = spacing_summary(res)
    diffs = [3.0, 0.5, -1.0]
    assert summ["leading"]["diff_mean"] == pytest.approx(statistics.fmean(diffs))
    assert summ["leading"]["diff_sd"] == pytest.approx(statistics.stdev(diffs))
    assert summ["leading"]["lower_in"] == 1 and summ["leading"]["paired"] == 3
    assert summ["trailing"]["sd"] == pytest.approx(statistics.stdev([10.0, 12.0, 11.0]))
    md = spacing_fid_markdown(res)
    assert "| leading | 900 | 0 | 13.00 | 12.50 | 10.00 | 11.83 | 1.61 |" in md
    assert f"| leading | +0.83 | {statistics.stdev(diffs):.2f} | 1/3 seeds |" in md
    assert "| trailing | +" not in md  # no row of the baseline against itself


def test_bad_values_are_refused_naming_the_value(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown spacing 'foo'"):
        SpacingFIDConfig(spacings=("foo",))
    with pytest.raises(ValueError, match="baseline"):
        SpacingFIDConfig(spacings=("leading", "linspace"))  # baseline trailing is not among them
    with pytest.raises(ValueError, match="seeds must hold at least 2"):
        SpacingFIDConfig(seeds=(4, 4))
    with pytest.raises(ValueError, match="n must be an integer"):
        SpacingFIDConfig(n=1)
    with pytest.raises(ValueError, match=r"eta must be a finite number in \[0.0, 1.0\], got 1.5"):
        SpacingFIDConfig(eta=1.5)  # the samplers' range: above 1, eq. 12 leaves DDIM's family
    assert SpacingFIDConfig(eta=1.0).eta == 1.0 and SpacingFIDConfig(eta=0).eta == 0.0
    with pytest.raises(ValueError, match="steps must be an integer in \\[1, 50\\], got 60"):
        run_spacing_fid(small_cfg(tmp_path, steps=60), tiny_unet(), NoiseSchedule.linear(T=50), **QUIET)
    with pytest.raises(SystemExit) as e:
        script_main("spacing FID", "spacing_fid", ["--eta", "-1", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("error: eta must be a finite number in [0.0, 1.0], got -1.0")
