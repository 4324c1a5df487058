"""Reflow, rectified flow's second step (Liu et al. 2023, Algorithm 1), for 2-D toy flows trained in seconds.

A trained flow model v maps noise x1 to data x0 along curved paths (the paths of the marginal velocity
cross-fade where straight lines from independent pairs cross). Reflow draws x1, runs the flow to get
its own x0 = Φ(x1), and trains a new velocity on the straight lines between those *coupled* pairs:

    pairs = reflow_pairs(flow_model, n=4000, steps=50, seed=1)     # (x0, x1), each (n, 2)
    res = train_on_pairs(cfg, *pairs, init=flow_model)             # the 2-rectified flow, res.ema

The pairs no longer cross, so the new paths are straighter and one Euler step goes further.
The loop is :mod:`ddim_lesson.train.loop`'s (AdamW, warmup and cosine decay, clipping, EMA) without
its files: the loss is :func:`~ddim_lesson.core.flow.pair_flow_loss` on the given pairs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict

import torch
from torch import nn

from ..core.checks import check_int
from ..core.flow import Velocity, flow_sample, pair_flow_loss
from ..core.schedules import NoiseSchedule
from ..core.seeds import latents_generator, seed_global, train_generator
from ..store.instruments import Stopwatch, progress_bar
from .loop import ema_update
from .train_config import TrainConfig, TrainResult, batch_indices, lr_at, make_model

__all__ = ["reflow_pairs", "train_on_pairs"]


@torch.no_grad()
def reflow_pairs(velocity: Velocity, n: int, steps: int, seed: int = 0,
                 shape: tuple[int, ...] = (2,)) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, x1): x1 ~ N(0, I) of shape (n, *shape) from ``seed``, and x0 = flow_sample(velocity, x1, steps=steps)."""
    n, steps = check_int("n", n, 1), check_int("steps", steps, 1)
    x1 = torch.randn((n, *shape), generator=latents_generator(seed))  # (n, ...)
    return flow_sample(velocity, x1, steps=steps), x1


def train_on_pairs(cfg: TrainConfig, x0: torch.Tensor, x1: torch.Tensor, init: nn.Module | None = None) -> TrainResult:
    """Train a velocity model on the straight lines between the pairs (x0[i], x1[i]), CPU, no files.

    ``cfg`` gives the model size, steps, batch, lr schedule, clipping, EMA and seed, as for ``train``
    (``cfg.objective`` must be "flow"; ``cfg.out`` must be empty: nothing is written). ``init``: start
    from this model's weights (reflow starts from the flow it straightens), else a fresh model.
    x0, x1: (N, ...) with the same shape. Returns a :class:`TrainResult` whose ``ema`` is the model to sample.
    """
    if cfg.objective != "flow":
        raise ValueError(f"train_on_pairs trains a velocity model: cfg.objective must be 'flow', got {cfg.objective!r}")
    if cfg.out:
        raise ValueError(f"train_on_pairs writes no files; cfg.out must be empty, got {cfg.out!r}")
    if x0.shape != x1.shape or x0.ndim < 2:
        raise ValueError(f"x0 and x1 must be (N, ...) of one shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    with torch.random.fork_rng():  # a fresh model's weights from cfg.seed, as train() draws them
        seed_global(cfg.seed)
        model = copy.deepcopy(init) if init is not None else make_model(cfg, tuple(x0.shape))
    model = model.float().train().requires_grad_(True)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = train_generator(cfg.seed)  # the s of each pair
    losses: list[float] = []
    sw = Stopwatch().start()
    for step in progress_bar(cfg.steps, "reflow", cfg.progress, unit="it", iterable=range(cfg.steps)):
        idx = batch_indices(x0.shape[0], cfg.batch_size, step, cfg.seed)  # (B,)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        loss = pair_flow_loss(model, x0[idx], x1[idx], g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        losses.append(float(loss.detach()))
    meta = {"train_config": asdict(cfg), "steps": cfg.steps, "pairs": int(x0.shape[0]),
            "wall_time_s": sw.stop(), "init": "given model" if init is not None else "fresh"}
    return TrainResult(model.eval(), ema, NoiseSchedule.linear(cfg.T), losses, meta)
