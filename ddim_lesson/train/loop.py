"""Training: ε-prediction MSE, AdamW with warmup, gradient clipping, EMA, resumable, DDP-ready.

The loop reads top to bottom in :func:`train`. Data order depends only on (seed, step), and the
noise generator's state is checkpointed, so a resumed run ends where an uninterrupted one does.
Run on several GPUs with ``torchrun --nproc_per_node=N -m ddim_lesson train ...``.
"""

from __future__ import annotations

import copy
import math
import shlex
import sys
from contextlib import ExitStack, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..core.losses import diffusion_loss, flow_matching_loss
from ..core.schedules import NoiseSchedule
from ..core.seeds import seed_global, train_generator
from ..nets.models import count_params
from ..store.checkpoints import downsample_losses, save_model
from ..store.data import load_dataset, load_images
from ..store.device import pick_device
from ..store.instruments import Stopwatch, progress_bar
from .conditional import drop_labels, init_from_weights
from .distributed import gather_rng_states, init_distributed, mean_over_ranks
from .train_config import TrainConfig, TrainResult, batch_indices, lr_at, make_model, subset_indices
from .train_state import SignalGuard, keep_numerics, numerics, open_run, restore_state, save_state

__all__ = ["ema_update", "train"]


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach().to(pe.dtype), 1 - decay)


def train(cfg: TrainConfig) -> TrainResult:
    """Train a denoiser. Writes ``checkpoint.*`` every ``ckpt_every`` steps and ``model.*``
    (EMA weights for sampling) at the end, when ``cfg.out`` is set.

    ``cfg.out`` is checked before any work; ``cfg.resume`` continues the newest complete checkpoint
    there after comparing the config with it. SIGINT or SIGTERM stop the run after the current step,
    with a checkpoint, by raising :class:`~ddim_lesson.train.train_state.TrainingInterrupted`.
    """
    with SignalGuard() as guard, ExitStack() as locks:
        return _train(cfg, guard, locks)


def _train(cfg: TrainConfig, guard: SignalGuard, locks: ExitStack) -> TrainResult:
    device = pick_device(cfg.device)
    rank, world = init_distributed(device)
    resumed = open_run(cfg, rank, locks)  # before any work: --out writable and ours, --resume flags match
    seed_global(cfg.seed)
    data = load_dataset(cfg.dataset, train=True, n_toy=cfg.n_toy, seed=cfg.seed)  # (N, ...)
    labels = load_images(cfg.dataset, train=True, with_labels=True)[1] if cfg.num_classes else None  # (N,)
    if data.ndim == 4:
        keep = subset_indices(data.shape[0], cfg.subset, cfg.n_images)  # (N',)
        data = data[keep]
        labels = labels[keep] if labels is not None else None
    loss_fn = flow_matching_loss if cfg.objective == "flow" else diffusion_loss
    schedule = NoiseSchedule.linear(cfg.T) if cfg.schedule == "linear" else NoiseSchedule.cosine(cfg.T)
    model = make_model(cfg, tuple(data.shape))
    if cfg.init_from:
        init_from_weights(model, cfg.init_from)  # before the EMA copy, so the EMA starts there too
    model = model.to(device)
    image = data.ndim == 4
    if image:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = train_generator(cfg.seed, rank)  # timesteps and noise
    start, losses, wall = 0, [], 0.0
    ckpt = Path(cfg.out) / "checkpoint" if cfg.out else None
    now = numerics(device, cfg.bf16)
    if resumed is not None:
        start, losses, wall = restore_state(resumed, model, ema, opt, g, rank)
        keep_numerics(resumed.meta, now, rank)  # the recorded thread count, so that the bits match
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.bf16 else nullcontext()

    bar = progress_bar(cfg.steps, f"train {cfg.dataset}", cfg.progress and rank == 0, unit="it",
                       iterable=range(start, cfg.steps), initial=start)
    sw = Stopwatch().start()  # this session's wall time; `wall` carries what earlier sessions took
    for step in bar:
        idx = batch_indices(data.shape[0], cfg.batch_size, step, cfg.seed, rank, world)
        x0 = data[idx].to(device, non_blocking=True)  # (B, ...)
        if image:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        y = None if labels is None else drop_labels(labels[idx], cfg.label_dropout, cfg.num_classes, g).to(device)
        with autocast:
            loss = loss_fn(net, x0, schedule, g) if y is None else loss_fn(net, x0, schedule, g, y)
        loss_mean = mean_over_ranks(loss.detach(), world)  # the same on every rank, so all stop together
        _check_finite("loss", loss_mean, step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        _check_finite("gradient norm", float(grad_norm), step, cfg)  # grads are all-reduced: same on all ranks
        opt.step()
        ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss_mean)
        if rank == 0 and cfg.progress and step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", lr=f"{lr_at(cfg, step):.1e}")
        done = step + 1
        stopping = cfg.stop_after > 0 and done - start >= cfg.stop_after
        signalled = guard.requested(world, device)  # SIGINT/SIGTERM: checkpoint this step, then stop
        if ckpt is not None and (done % cfg.ckpt_every == 0 or done == cfg.steps or stopping or signalled):
            rngs = gather_rng_states(g, world)  # every rank takes part; rank 0 writes
            if rank == 0:
                run_meta = _run_meta(cfg, model, device, done, wall + sw.elapsed, losses, world)
                run_meta["numerics"] = now  # threads, device, dtype: what --resume keeps
                with guard.writing():  # a signal never cuts a checkpoint write short
                    save_state(ckpt, model, ema, opt, rngs, schedule, run_meta, losses)
        if signalled and done < cfg.steps:
            bar.close()
            raise guard.interrupted(done, cfg.steps, ckpt)
        if stopping:
            break
    bar.close()
    wall += sw.stop()
    meta = _run_meta(cfg, model, device, start + len(losses[start:]), wall, losses, world) | {"numerics": now}
    if cfg.out and rank == 0 and meta["steps"] == cfg.steps:
        with guard.writing():
            save_model(Path(cfg.out) / "model", ema, schedule, **meta, loss_history=downsample_losses(losses))
    if world > 1:
        dist.barrier()
    return TrainResult(model, ema, schedule, losses, meta)


def _check_finite(what: str, value: float, step: int, cfg: TrainConfig) -> None:
    if not math.isfinite(value):
        raise FloatingPointError(
            f"{what} became {value} at step {step}; no checkpoint was written for it. "
            f"Try a lower --lr (now {cfg.lr}) or --grad-clip (now {cfg.grad_clip}), "
            "or --resume from the last good checkpoint."
        )


def _run_meta(cfg: TrainConfig, model: nn.Module, device: torch.device, steps: int, wall: float,
              losses: list[float], world: int) -> dict[str, Any]:
    return {
        "dataset": cfg.dataset,
        "train_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "steps": steps,
        "device": f"{device.type} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type,
        "world_size": world,
        "wall_time_s": round(wall, 1),
        "params": count_params(model),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]),
        "torch": torch.__version__,
        "final_loss": sum(losses[-100:]) / max(1, len(losses[-100:])),
    }
