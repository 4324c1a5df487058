"""evaluate/speed.py: the benchmark's config, verdicts and report (the format of benchmarks/results/speed.json)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from ddim_lesson import NoiseSchedule
from ddim_lesson.evaluate.speed import (
    QUICK,
    SpeedConfig,
    load_or_fresh,
    ratio_record,
    run_speed,
    table1_fids,
    verdict,
)
from ddim_lesson.evaluate.timing import Ratio
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser, UNet, UNetConfig

COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "speed.json"


def test_the_defaults_are_the_committed_runs_and_quick_shrinks_them():
    cfg = SpeedConfig()
    assert (cfg.rounds, cfg.unet_batch, cfg.unet_steps, cfg.mlp_batch, cfg.mlp_steps, cfg.mlp_sweep, cfg.ddpm_batch,
            cfg.ddpm_rounds, cfg.block_s, cfg.device, cfg.compile, cfg.json, cfg.quick) == (
        11, 32, 10, 512, 50, (1, 32), 4, 2, 0.5, "auto", False, "", False)
    assert cfg.table1.endswith("benchmarks/results/table1.json")
    quick = SpeedConfig(quick=True, rounds=99, mlp_sweep=(2, 8))
    assert {k: getattr(quick, k) for k in QUICK} == QUICK and quick.mlp_sweep == (2,)
    assert QUICK == {"rounds": 3, "unet_batch": 8, "unet_steps": 4, "mlp_batch": 256, "mlp_steps": 10,
                     "ddpm_batch": 1, "ddpm_rounds": 1, "block_s": 0.0}


@pytest.mark.parametrize(("kw", "match"), [
    ({"rounds": 0}, "rounds must be an integer >= 1, got 0"),
    ({"mlp_steps": 2.5}, "mlp_steps must be an integer >= 1, got 2.5"),
    ({"mlp_sweep": (1, 0)}, "each of mlp_sweep must be an integer >= 1, got 0"),
    ({"ddpm_batch": 5, "unet_batch": 4}, "ddpm_batch must be <= unet_batch, got ddpm_batch=5, unet_batch=4"),
    ({"block_s": -0.1}, "block_s must be a finite number in \\[0.0, 10.0\\], got -0.1"),
    ({"block_s": float("nan")}, "block_s must be a finite number in \\[0.0, 10.0\\], got nan"),
])
def test_bad_values_are_refused_naming_the_value_and_the_range(kw, match):
    with pytest.raises(ValueError, match=match):
        SpeedConfig(**kw)


def test_the_config_is_stored_with_the_fields_of_the_committed_file():
    assert list(asdict(SpeedConfig())) == list(json.loads(COMMITTED.read_text())["args"])


def test_verdict_and_ratio_record():
    assert verdict(1.02, 1.03) == "target <= 1.03: met"
    assert verdict(1.04, 1.03) == "target <= 1.03: MISSED"
    assert verdict(19.4, 10, lower_is_better=False) == "target >= 10: met"
    r = Ratio("x", 1.5, ratios=[1.5], a_s=[3.0], b_s=[2.0], median_cpu=1.4)
    assert list(ratio_record(r, 0.9)) == ["median", "target", "rounds", "a_s", "b_s", "median_cpu"]
    assert ratio_record(r) == {"median": 1.5, "rounds": [1.5], "a_s": [3.0], "b_s": [2.0], "median_cpu": 1.4}


def test_table1_fids_reads_the_two_cells_or_says_none(tmp_path):
    path = tmp_path / "t1.json"
    path.write_text(json.dumps({"cells": {"eta=0.0 S=50": {"fid": 10.126, "n": 500},
                                          "eta=1.0 S=1000": {"fid": 9.094, "n": 500}}}))
    assert table1_fids(str(path)) == {"ddim50": 10.13, "ddpm1000": 9.09, "n": 500}
    path.write_text(json.dumps({"cells": {"eta=0.0 S=50": {"fid": 10.1, "n": 500}}}))
    assert table1_fids(str(path)) is None
    path.write_text("not json")
    assert table1_fids(str(path)) is None
    assert table1_fids(str(tmp_path / "missing.json")) is None


def test_load_or_fresh_loads_the_shipped_model_or_a_fresh_one_of_the_same_kind():
    model, schedule, src = load_or_fresh("two-moons")
    assert isinstance(model, MLPDenoiser) and src == "pretrained('two-moons')" and not model.training
    model, schedule, src = load_or_fresh("no-such-model")
    assert isinstance(model, MLPDenoiser) and src.startswith("fresh MLPDenoiser") and schedule.T == 1000


def _shape(d):
    if isinstance(d, dict):
        return {k: _shape(v) for k, v in d.items()}
    return "list" if isinstance(d, list) else type(d).__name__


def test_a_small_run_writes_the_report_in_the_committed_format(tmp_path):
    pytest.importorskip("diffusers")
    torch.manual_seed(0)
    schedule = NoiseSchedule.linear(T=60)  # DDPM's T steps in (c): short, but >= DDIM's 50
    models = {"unet": (UNet(UNetConfig(base_channels=8, channel_mults=(1, 2))), schedule),
              "mlp": (MLPDenoiser(MLPConfig(hidden=16, depth=1)), schedule)}
    t1 = tmp_path / "t1.json"
    t1.write_text(json.dumps({"cells": {"eta=0.0 S=50": {"fid": 10.0, "n": 50},
                                        "eta=1.0 S=1000": {"fid": 9.0, "n": 50}}}))
    cfg = SpeedConfig(rounds=1, unet_batch=2, unet_steps=2, mlp_batch=8, mlp_steps=3, mlp_sweep=(1, 32),
                      ddpm_batch=1, ddpm_rounds=1, block_s=0.0, table1=str(t1), device="cpu")
    lines: list[str] = []
    report = json.loads(json.dumps(run_speed(cfg, log=lines.append, models=models)))  # as speed.json holds it
    committed = json.loads(COMMITTED.read_text())
    assert _shape(report) == _shape(committed)  # same keys, nesting and types, ratio by ratio
    assert report["args"] == {**asdict(cfg), "mlp_sweep": [1, 32]}
    assert report["max_abs_diff_vs_diffusers"] < 1e-4
    for r in report["ratios"].values():
        assert len(r["rounds"]) == 1 and r["median"] == pytest.approx(r["a_s"][0] / r["b_s"][0])
    text = "\n".join(lines)
    assert "(a) overhead, UNet: ddim_sample / bare calls (1 run per round): " in text and "target <= 1.03: " in text
    assert "(b) ours / diffusers DDIMScheduler, MLP batch 32 (1 run per round): " in text
    assert all(report["ratios"][k]["runs_per_round"] == 1 for k in report["ratios"] if k != "ddpm1000_over_ddim50")
    assert "(c) DDPM 1000 steps / DDIM 50 steps, UNet batch 1: speedup " in text
    assert "at FID 10.0 (DDIM η=0, S=50) vs 9.0 (DDPM, η=1, S=1000), n=50" in text
    assert lines[-1].startswith("\nno CUDA device")
