"""Notebook 10's two-moons study: an ε-model and a flow model trained the same way, then one round of reflow.

Three 2-D models, trained live in seconds with one recipe (``TrainConfig`` fields other than the
objective are equal): the ε-model (DDIM), the flow-matching model (Euler in s), and its reflow (the
2-rectified flow, trained on the flow's own (x0, x1) pairs, :mod:`ddim_lesson.train.reflow`). A control
trains the flow as long again from the same weights on independent pairs: it and the reflow differ in the
coupling and in the pairs (the reflow reuses ``n_pairs`` of the flow's own samples, each seen about
steps × batch / n_pairs times; the control sees steps × batch fresh data points once each). Measured:

- straightness (:func:`~ddim_lesson.course.trajectories.straightness`, end-to-end over path length)
  of fine-step paths (``path_steps`` Euler steps), all in the flow coordinates x_s; the ε-model's
  path in x_s is DDIM's path rescaled (the identity of :mod:`ddim_lesson.core.flow`), and its path in
  x_t, as notebook 04 measures it, is given too;
- quality at 1 and 2 model calls: the model card's "near" fraction and energy distance to fresh data
  (:mod:`ddim_lesson.evaluate.moons`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..core.flow import Velocity, eps_to_velocity, flow_grid, flow_progressive, flow_sample
from ..core.samplers import ddim_progressive, ddim_sample
from ..core.schedules import NoiseSchedule
from ..core.seeds import flow_study_generator, flow_study_seed
from ..evaluate.moons import energy_distance, near_fraction
from ..store.data import toy_2d
from ..store.instruments import Stopwatch
from ..train.loop import train
from ..train.reflow import reflow_pairs, train_on_pairs
from ..train.train_config import TrainConfig
from .trajectories import stack_path, straightness

__all__ = ["CONTROL", "MODELS", "ReflowStudy", "flow_paths", "moons_config", "quality", "run_reflow_study", "sample_at"]

MODELS = ("ε-model (DDIM)", "flow matching (Euler)", "reflow (Euler)")
CONTROL = "flow, more steps on fresh pairs (control)"  # as many steps as the reflow, on independent pairs


def moons_config(objective: str, steps: int, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
                 progress: bool = True) -> TrainConfig:
    """The one two-moons recipe of the study (CPU, no files); only ``objective`` and the step count vary."""
    return TrainConfig(dataset="two-moons", objective=objective, steps=steps, batch_size=batch_size, lr=lr,
                       warmup=min(100, steps // 5), seed=seed, device="cpu", progress=progress, bf16=False)


def flow_paths(velocity: Velocity, x1: torch.Tensor, s_grid: torch.Tensor) -> torch.Tensor:
    """x1 followed by x after each Euler step on ``s_grid``: (K+1, P, D) for x1 (P, D)."""
    return stack_path(x1, flow_progressive(velocity, x1, s_grid=s_grid))


def sample_at(name: str, model: nn.Module, schedule: NoiseSchedule, z: torch.Tensor, calls: int) -> torch.Tensor:
    """``calls`` model calls from z (P, 2): DDIM (η = 0, trailing, no clipping) for the ε-model, else Euler."""
    if name == MODELS[0]:
        return ddim_sample(model, schedule, z, steps=calls, clip_x0=False)
    return flow_sample(model, z, steps=calls)


def quality(x: torch.Tensor, data: torch.Tensor) -> tuple[float, float]:
    """(near fraction at radius 0.1, energy distance to ``data``) of samples x (P, 2)."""
    return near_fraction(x), energy_distance(x, data)


@dataclass
class ReflowStudy:
    """What :func:`run_reflow_study` trained and measured."""

    models: dict[str, nn.Module]  # MODELS and CONTROL -> the EMA weights
    schedule: NoiseSchedule
    pairs: tuple[torch.Tensor, torch.Tensor]  # (x0, x1), each (n_pairs, 2): the flow's own coupling
    straightness: dict[str, float]  # mean over the paths; keys: MODELS, CONTROL and "ε-model (DDIM), in x_t"
    quality: dict[tuple[str, int], tuple[float, float]]  # (model, calls) -> (near, energy distance)
    data_quality: tuple[float, float]  # the same two numbers for a fresh draw of the data (the floor)
    paths: dict[str, torch.Tensor] = field(default_factory=dict)  # MODELS and CONTROL -> (K+1, P, 2) in x_s
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage


def run_reflow_study(train_steps: int = 600, reflow_steps: int = 400, batch_size: int = 256, n_pairs: int = 3000,
                     pair_steps: int = 50, path_steps: int = 100, n_paths: int = 500, n_eval: int = 2000,
                     calls: tuple[int, ...] = (1, 2), seed: int = 0, progress: bool = True) -> ReflowStudy:
    """Train the three models and measure them (see the module docstring). A few tens of seconds on one CPU core."""
    sec: dict[str, float] = {}
    with Stopwatch() as sw:
        eps_res = train(moons_config("eps", train_steps, batch_size, seed=seed, progress=progress))
    sec["train ε-model"] = sw.seconds
    with Stopwatch() as sw:
        flow_res = train(moons_config("flow", train_steps, batch_size, seed=seed, progress=progress))
    sec["train flow"] = sw.seconds
    with Stopwatch() as sw:
        re_seed = flow_study_seed(seed, "reflow")
        x0, x1 = reflow_pairs(flow_res.ema, n_pairs, pair_steps, seed=re_seed)  # the flow's own coupling
        re_cfg = moons_config("flow", reflow_steps, batch_size, lr=1e-3, seed=re_seed, progress=progress)
        reflow = train_on_pairs(re_cfg, x0, x1, init=flow_res.ema).ema
    sec["pairs and reflow"] = sw.seconds
    with Stopwatch() as sw:
        n_ind = reflow_steps * batch_size  # independent pairs, each seen about once: plain flow matching, continued
        gi = flow_study_generator(seed, "control")
        control = train_on_pairs(re_cfg, toy_2d("two-moons", n_ind, gi), torch.randn(n_ind, 2, generator=gi),
                                 init=flow_res.ema).ema
    sec["control"] = sw.seconds
    schedule = eps_res.schedule
    models = dict(zip(MODELS, (eps_res.ema, flow_res.ema, reflow)))
    models[CONTROL] = control

    with Stopwatch() as sw:
        g = flow_study_generator(seed, "noise")
        z = torch.randn(max(n_eval, n_paths), 2, generator=g)  # the same noise for every model
        data = toy_2d("two-moons", n_eval, flow_study_generator(seed, "data"))
        fresh = toy_2d("two-moons", n_eval, flow_study_generator(seed, "fresh"))
        zp = z[:n_paths]
        abar_T = schedule.alphas_cumprod[-1]
        grids = {MODELS[0]: flow_grid(schedule, path_steps, "trailing"),  # the ε-model on its own clock
                 MODELS[1]: torch.linspace(1, 0, path_steps + 1, dtype=torch.float64)}
        grids[MODELS[2]] = grids[CONTROL] = grids[MODELS[1]]
        velocity = {k: eps_to_velocity(m, schedule) if k == MODELS[0] else m for k, m in models.items()}
        starts = {k: zp for k in models}
        starts[MODELS[0]] = zp / float(abar_T.sqrt() + (1 - abar_T).sqrt())  # x_s at t = T - 1
        paths = {k: flow_paths(velocity[k], starts[k], grids[k]) for k in models}
        straight = {k: float(straightness(p).mean()) for k, p in paths.items()}
        xt = stack_path(zp, ddim_progressive(models[MODELS[0]], schedule, zp, steps=path_steps,
                                             clip_x0=False))  # (K+1, P, 2) DDIM's x_t path
        straight["ε-model (DDIM), in x_t"] = float(straightness(xt).mean())
        qual = {(k, c): quality(sample_at(k, models[k], schedule, z[:n_eval], c), data) for k in models for c in calls}
    sec["measure"] = sw.seconds
    return ReflowStudy(models, schedule, (x0, x1), straight, qual, quality(fresh, data), paths, sec)
