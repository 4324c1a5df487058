"""benchmarks/speed.py: the interleaved-ratio timer (with a fake clock) and the loops it times."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from ddim_lesson import NoiseSchedule, ddim_sample, ddim_timesteps
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser


def _load_speed():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("bench_speed", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_speed"] = mod
    spec.loader.exec_module(mod)
    return mod


speed = _load_speed()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def __call__(self) -> float:
        return self.now

    def task(self, name: str, durations: list[float]):
        it = iter(durations)

        def run() -> None:
            self.log.append(name)
            self.now += next(it)

        return run


def test_interleaved_ratio_is_the_median_of_per_round_ratios_and_alternates_the_order():
    clock = FakeClock()
    # warmup, then 5 rounds; round 2 of A is an outlier (a busy machine) that the median ignores
    a = clock.task("a", [100.0, 2.0, 2.2, 50.0, 1.8, 2.0])
    b = clock.task("b", [100.0, 1.0, 1.0, 1.0, 1.0, 0.8])
    r = speed.interleaved_ratio("x", a, b, rounds=5, warmup=1, timer=clock, cpu_timer=clock)
    assert r.ratios == pytest.approx([2.0, 2.2, 50.0, 1.8, 2.5])
    assert r.median == pytest.approx(2.2)
    assert r.ratios_cpu == pytest.approx(r.ratios) and r.median_cpu == pytest.approx(2.2)
    assert r.a_s == pytest.approx([2.0, 2.2, 50.0, 1.8, 2.0])
    assert clock.log == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]


def test_interleaved_ratio_rejects_zero_rounds():
    with pytest.raises(ValueError, match="rounds"):
        speed.interleaved_ratio("x", lambda: None, lambda: None, rounds=0)


class CountingMLP(MLPDenoiser):
    calls = 0

    def forward(self, x, t):
        self.calls += 1
        self.ts = getattr(self, "ts", []) + [int(t[0])]
        return super().forward(x, t)


def test_bare_calls_make_the_samplers_calls_and_ours_is_ddim_sample():
    torch.manual_seed(0)
    model, schedule = CountingMLP(MLPConfig(hidden=16, depth=1)).eval(), NoiseSchedule.linear(T=100)
    x = torch.randn(8, 2)
    speed.bare_calls(model, schedule, x, 7)()
    assert model.calls == 7 and model.ts == ddim_timesteps(100, 7).tolist()
    assert torch.equal(speed.ours(model, schedule, x, 7)(), ddim_sample(model, schedule, x, steps=7))


def test_diffusers_loop_is_the_same_sampler_as_ours():
    pytest.importorskip("diffusers")
    torch.manual_seed(1)
    model, schedule = MLPDenoiser(MLPConfig(hidden=32, depth=2)).eval(), NoiseSchedule.linear()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(64, 2)
    for steps in (5, 50):
        ours, theirs = speed.ours(model, schedule, x, steps)(), speed.diffusers_loop(model, schedule, x, steps)()
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4), (ours - theirs).abs().max()
