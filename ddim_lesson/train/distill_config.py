"""What a progressive-distillation run is told (:class:`DistillConfig`, from which ``ddim-lesson distill``'s
flags are built), and its plan: the rounds 2k -> k from ``start_steps`` down to ``final_steps``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core.checks import check_int
from ..core.fields import (
    check_fields,
    device_field,
    lr_field,
    progress_field,
    seed_field,
    train_batch_field,
    training_field,
)


@dataclass
class DistillConfig:
    """A halving run: each round trains a student whose ONE DDIM step matches TWO of its teacher's
    (Salimans & Ho 2022), then the student teaches the next round. The flags are built from these fields."""

    teacher: str = field(default="fashion-mnist", metadata={"help": "the first teacher: a shipped name or a path"})
    start_steps: int = field(default=64, metadata={"help": "the teacher's DDIM steps; the first student takes half"})
    final_steps: int = field(default=4, metadata={"help": "the last student's steps (start_steps / 2**rounds)"})
    steps_per_round: int = field(default=1000, metadata={"help": "training steps in each round"})
    batch_size: int = train_batch_field(64)
    lr: float = lr_field(2e-4)  # a student starts from its teacher: a tenth of train's rate
    warmup: int = training_field("warmup", 20)  # per round: a round is short
    min_lr_frac: float = training_field("min_lr_frac", 0.1)  # at the end of each round
    grad_clip: float = training_field("grad_clip", 1.0)
    ema_decay: float = training_field("ema_decay", 0.995)  # restarts each round from the round's first weights
    spacing: str = field(default="trailing", metadata={"help": "the DDIM grid; only 'trailing' nests 2k -> k"})
    seed: int = seed_field()
    device: str = device_field()
    out: str = field(default="", metadata={"help": "folder for checkpoint.*, student-K.* per round and model.*"})
    ckpt_every: int = training_field("ckpt_every", 200)
    resume: bool = training_field("resume", False)
    stop_after: int = training_field("stop_after", 0)
    progress: bool = progress_field()
    n_toy: int = training_field("n_toy", 20000)
    n_images: int = training_field("n_images", 0)

    def __post_init__(self) -> None:
        for name in ("start_steps", "final_steps", "steps_per_round"):
            check_int(name, getattr(self, name), 1)
        check_fields(self)  # batch_size, lr, warmup, min_lr_frac, grad_clip, ema_decay, seed, ckpt_every, ...
        ratio = self.start_steps // self.final_steps
        if self.start_steps % self.final_steps or ratio < 2 or ratio & (ratio - 1):
            raise ValueError(f"start_steps / final_steps must be a power of 2 >= 2, got {self.start_steps} / "
                             f"{self.final_steps}; allowed e.g. --start-steps 64 --final-steps 4")
        if self.spacing != "trailing":
            raise ValueError(f"spacing must be 'trailing' (the one spacing whose k-step grid is every other point "
                             f"of its 2k-step grid for every T), got {self.spacing!r}")

    @property
    def rounds(self) -> int:
        """How many halvings: log2(start_steps / final_steps)."""
        return (self.start_steps // self.final_steps).bit_length() - 1

    @property
    def steps(self) -> int:
        """Training steps over all rounds (what ``train_state``'s resume checks call ``steps``)."""
        return self.rounds * self.steps_per_round

    def student_steps(self, round_: int) -> int:
        """The DDIM steps of round ``round_``'s student (its teacher takes twice as many)."""
        return self.start_steps >> (round_ + 1)

    def lr_at(self, j: int) -> float:
        """The learning rate at step j of a round: linear warmup, then cosine decay to lr·min_lr_frac."""
        if j < self.warmup:
            return self.lr * (j + 1) / self.warmup
        p = (j - self.warmup) / max(1, self.steps_per_round - self.warmup)
        return self.lr * (self.min_lr_frac + (1 - self.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))
