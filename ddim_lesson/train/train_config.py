"""What a training run is told (:class:`TrainConfig`, from which the CLI's ``train`` flags are built),
what it returns, and the pieces of its set-up: the model for a dataset, the learning-rate schedule,
and the data order, which depends only on (seed, step) so a resumed run replays it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.checks import check_float, check_int
from ..core.fields import (
    check_fields,
    device_field,
    lr_field,
    progress_field,
    seed_field,
    train_batch_field,
    training_field,
)
from ..core.losses import OBJECTIVES
from ..core.schedules import NoiseSchedule
from ..core.seeds import data_order_generator, subset_generator
from ..nets.models import MLPConfig, UNetConfig, build_model
from ..store.data import IMAGE_DATASETS, TOY_DATASETS

DATASET_CLASSES = {"fashion-mnist": 10, "mnist": 10, "cifar10": 10}  # the labels each image set holds
LABEL_DROPOUT = 0.1  # label_dropout's default; any other value asks for class-conditional training


@dataclass
class TrainConfig:
    """Everything a training run needs. The CLI's ``train`` flags are built from these fields."""

    dataset: str = "fashion-mnist"  # fashion-mnist | mnist | cifar10 | two-moons | swiss-roll | ...
    steps: int = field(default=5000, metadata={"help": "training steps (optimizer updates)"})
    batch_size: int = train_batch_field(128)
    lr: float = lr_field(2e-3)
    warmup: int = training_field("warmup", 200)
    min_lr_frac: float = training_field("min_lr_frac", 0.1)
    weight_decay: float = 0.0
    grad_clip: float = training_field("grad_clip", 1.0)
    ema_decay: float = training_field("ema_decay", 0.999)
    schedule: str = "linear"  # linear | cosine
    T: int = 1000
    base_channels: int = 32  # UNet size
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    mlp_hidden: int = 128  # MLP size (2-D toy data)
    mlp_depth: int = 3
    seed: int = seed_field()
    device: str = device_field()
    compile: bool = False
    bf16: bool = True  # autocast to bf16 on CUDA only
    out: str = field(default="", metadata={"help": "folder for checkpoint.* and model.* (required by the command)"})
    ckpt_every: int = training_field("ckpt_every", 500)
    resume: bool = training_field("resume", False)
    stop_after: int = training_field("stop_after", 0)
    progress: bool = progress_field()
    n_toy: int = training_field("n_toy", 20000)
    n_images: int = training_field("n_images", 0)  # of --subset, if set
    subset: str = ""  # "K/P": the K-th of P disjoint parts of the image set (a fixed permutation, seed 0)
    objective: str = "eps"  # eps: ε-prediction on the DDPM clock | flow: velocity on x_s = (1-s)x0 + sε
    num_classes: int = 0  # > 0: class-conditional UNet trained with the dataset's labels
    label_dropout: float = LABEL_DROPOUT  # conditional only: P(label -> "no label"), so one net is also unconditional
    init_from: str = ""  # start from a saved model's weights (a shipped name or checkpoint path)

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        if self.dataset not in IMAGE_DATASETS + TOY_DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; allowed: {', '.join(IMAGE_DATASETS + TOY_DATASETS)}")
        for name in ("steps", "T"):
            check_int(name, getattr(self, name), 1)
        check_int("num_classes", self.num_classes, 0)
        # checked, not converted: the config keeps the values it was given (an int stays an int in the meta)
        check_fields(self)  # batch_size, lr, warmup, min_lr_frac, grad_clip, ema_decay, seed, ckpt_every, ...
        check_float("weight_decay", self.weight_decay, 0, 1, hi_open=True)
        check_float("label_dropout", self.label_dropout, 0, 1)
        if self.num_classes and self.dataset in TOY_DATASETS:
            raise ValueError(f"num_classes must be 0 for the toy dataset {self.dataset!r}; allowed > 0: image sets")
        self._check_labels()
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.subset:
            parse_subset(self.subset)
            if self.dataset in TOY_DATASETS:
                raise ValueError(f"subset is for image sets; the toy dataset {self.dataset!r} has --n-toy")
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")


    def _check_labels(self) -> None:
        """num_classes is 0 or the dataset's own class count (9 would train its last class as the "no label"
        token, 3 would fail at the first step); a label_dropout other than the default needs num_classes."""
        k = DATASET_CLASSES.get(self.dataset)
        if k is not None and self.num_classes not in (0, k):
            raise ValueError(f"num_classes must be 0 or {k} (the classes of {self.dataset}), got {self.num_classes}")
        if self.num_classes == 0 and self.label_dropout != LABEL_DROPOUT:
            hint = (f"pass num_classes {k} too" if k is not None
                    else f"the toy dataset {self.dataset!r} has no labels")
            raise ValueError(f"label_dropout {self.label_dropout} is for class-conditional training; {hint}, "
                             "or leave label_dropout out")


@dataclass
class TrainResult:
    model: nn.Module  # the raw (non-EMA) weights, unwrapped from DDP/compile
    ema: nn.Module  # the EMA weights: use these to sample
    schedule: NoiseSchedule
    losses: list[float]
    meta: dict[str, Any]


def make_model(cfg: TrainConfig, data_shape: tuple[int, ...]) -> nn.Module:
    """The denoiser for ``cfg``: an MLP for toy data, a UNet for images. A flow model gets s in [0, 1]
    and embeds s·T, so its time embedding spans the frequencies an ε-model's integer t does."""
    time_scale = float(cfg.T) if cfg.objective == "flow" else 1.0
    if cfg.dataset in TOY_DATASETS:
        mcfg = MLPConfig(hidden=cfg.mlp_hidden, depth=cfg.mlp_depth, time_scale=time_scale)
        return build_model("mlp", mcfg.to_dict())
    c, h = data_shape[1], data_shape[2]
    ucfg = UNetConfig(in_channels=c, image_size=h, base_channels=cfg.base_channels, channel_mults=cfg.channel_mults,
                      num_res_blocks=cfg.num_res_blocks, num_classes=cfg.num_classes, time_scale=time_scale)
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
    perm = torch.randperm(n, generator=data_order_generator(seed, epoch))
    start = (j * world + rank) * batch
    return perm[start : start + batch] if start + batch <= n else perm[torch.arange(start, start + batch) % n]


def parse_subset(subset: str) -> tuple[int, int]:
    """``"K/P"`` -> (K, P) with 0 <= K < P; anything else is a ValueError naming the form."""
    try:
        k_s, p_s = subset.split("/")
        k, p = int(k_s), int(p_s)
    except ValueError:
        raise ValueError(f"subset must read K/P (the K-th of P disjoint parts, 0 <= K < P), got {subset!r}") from None
    if not (p >= 1 and 0 <= k < p):
        raise ValueError(f"subset {subset!r}: need P >= 1 and 0 <= K < P")
    return k, p


def subset_indices(n: int, subset: str = "", n_images: int = 0) -> torch.Tensor:
    """Indices of the training images a run uses, (N',) int64.

    No subset: the first ``n_images`` (all if 0), in order. ``"K/P"``: the K-th of P equal, disjoint
    slices of ``torch.randperm(n)`` drawn with seed 0 (so parts K and K' of one P never share an image),
    then its first ``n_images``. The rule depends on nothing but (n, subset, n_images).
    """
    if not subset:
        return torch.arange(min(n, n_images) if n_images else n)
    k, p = parse_subset(subset)
    size = n // p
    part = torch.randperm(n, generator=subset_generator())[k * size : (k + 1) * size]
    if n_images > size:
        raise ValueError(f"n_images={n_images} is more than part {subset} holds ({size} of {n}); allowed: 0..{size}")
    return part[:n_images] if n_images else part
