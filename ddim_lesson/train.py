"""Training: ε-prediction MSE, AdamW with warmup, gradient clipping, EMA, resumable, DDP-ready.

The loop reads top to bottom in :func:`train`. Data order depends only on (seed, step), and the
noise generator's state is checkpointed, so a resumed run ends where an uninterrupted one does.
Run on several GPUs with ``torchrun --nproc_per_node=N -m ddim_lesson train ...``.
"""

from __future__ import annotations

import copy
import math
import os
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import downsample_losses, save_model
from .conditional import drop_labels, init_from_weights
from .data import IMAGE_DATASETS, TOY_DATASETS, load_dataset, load_images
from .forward import q_sample
from .models import MLPConfig, UNetConfig, build_model, count_params
from .schedules import NoiseSchedule
from .train_state import SignalGuard, open_run, restore_state, save_state


@dataclass
class TrainConfig:
    """Everything a training run needs. The CLI's ``train`` flags are built from these fields."""

    dataset: str = "fashion-mnist"  # fashion-mnist | mnist | cifar10 | two-moons | swiss-roll | ...
    steps: int = 5000
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 200
    min_lr_frac: float = 0.1  # cosine decay to lr·min_lr_frac at the last step
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    schedule: str = "linear"  # linear | cosine
    T: int = 1000
    base_channels: int = 32  # UNet size
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    mlp_hidden: int = 128  # MLP size (2-D toy data)
    mlp_depth: int = 3
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    compile: bool = False
    bf16: bool = True  # autocast to bf16 on CUDA only
    out: str = ""  # folder for checkpoint.* and model.*; empty: keep nothing on disk
    ckpt_every: int = 500
    resume: bool = False
    stop_after: int = 0  # stop this invocation after N steps (0: run to ``steps``); resume later
    progress: bool = True
    n_toy: int = 20000
    n_images: int = 0  # train on the first N images only (0: all); for quick CPU runs and tests
    num_classes: int = 0  # > 0: class-conditional UNet trained with the dataset's labels
    label_dropout: float = 0.1  # conditional only: P(label -> "no label"), so one net is also unconditional
    init_from: str = ""  # start from a saved model's weights (a shipped name or checkpoint path)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        if self.dataset not in IMAGE_DATASETS + TOY_DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; allowed: {', '.join(IMAGE_DATASETS + TOY_DATASETS)}")
        for name in ("steps", "batch_size", "T", "ckpt_every", "n_toy"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("warmup", "stop_after", "n_images", "seed", "num_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if not (0 < self.grad_clip < math.inf):
            raise ValueError(f"grad_clip must be a finite number > 0, got {self.grad_clip}")
        if not (0 <= self.min_lr_frac <= 1):
            raise ValueError(f"min_lr_frac must be in [0, 1], got {self.min_lr_frac}")
        if not (0 <= self.weight_decay < 1):
            raise ValueError(f"weight_decay must be in [0, 1), got {self.weight_decay}")
        if not (0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not (0 <= self.ema_decay < 1):
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not (0 <= self.label_dropout <= 1):
            raise ValueError(f"label_dropout must be in [0, 1], got {self.label_dropout}")
        if self.num_classes and self.dataset in TOY_DATASETS:
            raise ValueError(f"num_classes must be 0 for the toy dataset {self.dataset!r}; allowed > 0: image sets")
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")


@dataclass
class TrainResult:
    model: nn.Module  # the raw (non-EMA) weights, unwrapped from DDP/compile
    ema: nn.Module  # the EMA weights: use these to sample
    schedule: NoiseSchedule
    losses: list[float]
    meta: dict[str, Any]


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU, unless a device is named. Under torchrun, "auto" and "cuda"
    mean this process's GPU, cuda:$LOCAL_RANK."""
    if name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N, mps") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; allowed here: auto, cpu")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} requested but MPS is not available; allowed here: auto, cpu")
        if dev.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"unsupported device {name!r}; allowed: auto, cpu, cuda, cuda:N, mps")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_model(cfg: TrainConfig, data_shape: tuple[int, ...]) -> nn.Module:
    if cfg.dataset in TOY_DATASETS:
        return build_model("mlp", MLPConfig(hidden=cfg.mlp_hidden, depth=cfg.mlp_depth).to_dict())
    c, h = data_shape[1], data_shape[2]
    ucfg = UNetConfig(in_channels=c, image_size=h, base_channels=cfg.base_channels,
                      channel_mults=cfg.channel_mults, num_res_blocks=cfg.num_res_blocks, num_classes=cfg.num_classes)
    return build_model("unet", ucfg.to_dict())


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to lr·min_lr_frac."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def batch_indices(n: int, batch: int, step: int, seed: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """Indices of this rank's batch at ``step``: a fresh permutation per epoch from (seed, epoch)."""
    per_epoch = max(1, n // (batch * world))
    epoch, j = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    start = (j * world + rank) * batch
    return perm[start : start + batch] if start + batch <= n else perm[torch.arange(start, start + batch) % n]


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach().to(pe.dtype), 1 - decay)


def diffusion_loss(model: nn.Module, x0: torch.Tensor, schedule: NoiseSchedule, g: torch.Generator,
                   y: torch.Tensor | None = None) -> torch.Tensor:
    """ε-prediction MSE (DDPM eq. 14): ||ε - ε_θ(√ᾱ_t x0 + √(1-ᾱ_t) ε, t[, y])||². x0: (B, ...), y: (B,)."""
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=g).to(x0.device)  # (B,)
    eps = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)  # (B, ...)
    x_t = q_sample(x0, t, schedule, noise=eps)
    eps_pred = model(x_t, t) if y is None else model(x_t, t, y)
    return F.mse_loss(eps_pred.float(), eps.float())


def train(cfg: TrainConfig) -> TrainResult:
    """Train a denoiser. Writes ``checkpoint.*`` every ``ckpt_every`` steps and ``model.*``
    (EMA weights for sampling) at the end, when ``cfg.out`` is set.

    ``cfg.out`` is checked before any work; ``cfg.resume`` continues the newest complete checkpoint
    there after comparing the config with it. SIGINT or SIGTERM stop the run after the current step,
    with a checkpoint, by raising :class:`~ddim_lesson.train_state.TrainingInterrupted`.
    """
    with SignalGuard() as guard:
        return _train(cfg, guard)


def _train(cfg: TrainConfig, guard: SignalGuard) -> TrainResult:
    device = pick_device(cfg.device)
    rank, world = _init_distributed(device)
    resumed = open_run(cfg, rank)  # before any work: --out writable, --resume flags match the checkpoint
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset, train=True, n_toy=cfg.n_toy, seed=cfg.seed)  # (N, ...)
    labels = load_images(cfg.dataset, train=True, with_labels=True)[1] if cfg.num_classes else None  # (N,)
    if cfg.n_images and data.ndim == 4:
        data = data[: cfg.n_images]
        labels = labels[: cfg.n_images] if labels is not None else None
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
    g = torch.Generator().manual_seed(cfg.seed * 7919 + rank)  # timesteps and noise
    start, losses, wall = 0, [], 0.0
    ckpt = Path(cfg.out) / "checkpoint" if cfg.out else None
    if resumed is not None:
        start, losses, wall = restore_state(resumed, model, ema, opt, g, rank)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.bf16 else nullcontext()

    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not cfg.progress or rank != 0,
               desc=f"train {cfg.dataset}", dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in bar:
        idx = batch_indices(data.shape[0], cfg.batch_size, step, cfg.seed, rank, world)
        x0 = data[idx].to(device, non_blocking=True)  # (B, ...)
        if image:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        y = None if labels is None else drop_labels(labels[idx], cfg.label_dropout, cfg.num_classes, g).to(device)
        with autocast:
            loss = diffusion_loss(net, x0, schedule, g) if y is None else diffusion_loss(net, x0, schedule, g, y)
        loss_mean = _mean_over_ranks(loss.detach(), world)  # the same on every rank, so all stop together
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
            rngs = _gather_rng_states(g, world)  # every rank takes part; rank 0 writes
            if rank == 0:
                run_meta = _run_meta(cfg, model, device, done, wall + time.perf_counter() - t0, losses, world)
                with guard.writing():  # a signal never cuts a checkpoint write short
                    save_state(ckpt, model, ema, opt, rngs, schedule, run_meta, losses)
        if signalled and done < cfg.steps:
            bar.close()
            raise guard.interrupted(done, cfg.steps, ckpt)
        if stopping:
            break
    bar.close()
    wall += time.perf_counter() - t0
    meta = _run_meta(cfg, model, device, start + len(losses[start:]), wall, losses, world)
    if cfg.out and rank == 0 and meta["steps"] == cfg.steps:
        with guard.writing():
            save_model(Path(cfg.out) / "model", ema, schedule, **meta, loss_history=downsample_losses(losses))
    if world > 1:
        dist.barrier()
    return TrainResult(model, ema, schedule, losses, meta)


# -- helpers: checkpoint state, DDP --------------------------------------------------------
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



def _init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group that torchrun set up (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _gather_rng_states(g: torch.Generator, world: int) -> list[torch.Tensor]:
    """Every rank's noise-generator state, so a resumed DDP run replays the same noise."""
    if world == 1:
        return [g.get_state()]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, g.get_state())
    return states


def _mean_over_ranks(loss: torch.Tensor, world: int) -> float:
    if world > 1:
        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= world
    return float(loss)
