"""The training loss lives with the maths (core.losses) and evaluate takes it from there: training throughput
computes diffusion_loss when no loss is given, and neither train/ nor the command line hands it down."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import torch

import ddim_lesson.evaluate.throughput as throughput
from ddim_lesson.core.losses import diffusion_loss
from ddim_lesson.nets.models import UNetConfig

PKG = Path(__file__).resolve().parents[2] / "ddim_lesson"


def test_training_throughput_computes_diffusion_loss_by_default(monkeypatch):
    calls = []

    def spy(model, x0, schedule, g):
        calls.append(tuple(x0.shape))
        return diffusion_loss(model, x0, schedule, g)

    monkeypatch.setattr(throughput, "diffusion_loss", spy)  # the name the default resolves at call time
    ips = throughput.training_throughput(torch.device("cpu"), bf16=False, steps=1, batch=2,
                                         config=UNetConfig(base_channels=8, channel_mults=(1, 2)))
    assert math.isfinite(ips) and ips > 0
    assert calls == [(2, 1, 28, 28)] * (5 + 1)  # 5 untimed steps, 1 timed: every step is the default loss


def test_diffusion_loss_is_defined_once_in_core_and_not_passed_by_a_command():
    defined = [p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
               if any(isinstance(n, ast.FunctionDef) and n.name == "diffusion_loss"
                      for n in ast.walk(ast.parse(p.read_text())))]
    assert defined == ["core/losses.py"]
    for p in (PKG / "cli").glob("*.py"):  # the command line does not import the loss to inject it into evaluate/
        names = {a.name for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert "diffusion_loss" not in names, p.name
