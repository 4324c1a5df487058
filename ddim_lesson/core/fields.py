"""The config fields that several commands share, written once: each factory holds its flag's one help text, the
default where the commands agree, and the one check (:mod:`~ddim_lesson.core.checks`) of its kind of value.

A config declares ``seed: int = seed_field()`` and calls :func:`check_fields` once in ``__post_init__``: every
field made here is checked there, by its own check, so that ``--seed -1`` gets the same message from every
command. Where a default legitimately differs by command (a training run's batch against a sampling batch, a
distillation round's short warmup), the factory takes it; the help stays the same text. Pure Python: the
dataclass-to-argparse bridge (``cli/flags.py``) reads ``metadata["help"]``; nothing here touches argparse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .checks import check_choice, check_eta, check_float, check_int, check_lr, check_seed, check_seeds
from .schedules import DEFAULT_SPACING, SPACINGS

Check = Callable[[str, Any], Any]

SEED_HELP = "the random seed, an integer in [0, 2**63 - 1]; the same seed draws the same numbers"
SEEDS_HELP = "the seeds, each an integer in [0, 2**63 - 1]; one measurement per seed"
PROGRESS_HELP = "show a progress bar on stderr"
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"
THREADS_HELP = "torch CPU threads (0: the course's thread rule picks them)"
ETA_HELP = "η in [0, 1]: 0 is deterministic DDIM, 1 is DDPM-like"
LR_HELP = "the learning rate (the peak, where it warms up and decays), in (0, 1)"
STEPS_HELP = "DDIM steps S = model calls per sample, in [1, T]"
SPACING_HELP = "timestep spacing"
SAMPLE_BATCH_HELP = "samples per model call, which bounds memory"
TRAIN_BATCH_HELP = "training examples per optimizer step"
RESULTS_HELP = ("results path without suffix, for OUT.json and OUT.md (the committed ones in benchmarks/results/ "
                "only if named)")
NFES_HELP = "model calls per sample (one column each)"
CLIP_X0_HELP = "clip x0_pred to [-1, 1] (off: the exact ODE, forward and back)"
ROUNDS_HELP = "timed rounds, interleaved; the median is kept"


def _field(default: Any, help_: str, check: Check | None = None, **meta: Any) -> Any:
    return dataclasses.field(default=default, metadata={"help": help_, **({"check": check} if check else {}), **meta})


def _count(lo: int, hi: int | None = None) -> Check:
    return lambda name, v: check_int(name, v, lo, hi)


def seed_field() -> Any:
    """``--seed``: one random seed, default 0, checked by :func:`~ddim_lesson.core.checks.check_seed`."""
    return _field(0, SEED_HELP, lambda name, v: check_seed(v, name))


def seeds_field(default: tuple[int, ...]) -> Any:
    """``--seeds``: a list of seeds, each checked as one seed; the checked tuple of ints replaces the value."""
    return _field(default, SEEDS_HELP, lambda name, v: check_seeds(v), convert=True)


def progress_field() -> Any:
    """``--progress`` / ``--no-progress``, on by default."""
    return _field(True, PROGRESS_HELP)


def device_field() -> Any:
    """``--device``, default auto (checked where it is picked: ``store.device.pick_device``)."""
    return _field("auto", DEVICE_HELP)


def threads_field() -> Any:
    """``--threads``: 0 (the course's rule) or a count."""
    return _field(0, THREADS_HELP, _count(0))


def eta_field(default: float = 0.0) -> Any:
    """``--eta``, checked by :func:`~ddim_lesson.core.checks.check_eta`."""
    return _field(default, ETA_HELP, lambda name, v: check_eta(v, name))


def lr_field(default: float) -> Any:
    """``--lr``: the default differs by what is trained (a denoiser, a student, the classifier)."""
    return _field(default, LR_HELP, lambda name, v: check_lr(v, name))


def steps_field(default: int) -> Any:
    """``--steps`` of a sampler: S in [1, T], checked by ``core.schedules.check_steps`` once the model (and so T)
    is loaded, which names the model's own range."""
    return _field(default, STEPS_HELP)


def spacing_field(default: str = DEFAULT_SPACING) -> Any:
    """``--spacing``: one of ``core.schedules.SPACINGS``."""
    return _field(default, SPACING_HELP, lambda name, v: check_choice(name, v, SPACINGS), choices=SPACINGS)


def sample_batch_field(default: int | None, hi: int | None = None, shown: str | None = None) -> Any:
    """``--batch-size`` of sampling (memory): the default differs by command, as its ``shown`` text says."""
    meta = {"shown": shown} if shown else {}
    return _field(default, SAMPLE_BATCH_HELP, _count(1, hi), **meta)  # None (the command picks) is not checked


def train_batch_field(default: int) -> Any:
    """``--batch-size`` of training (the gradient's noise): the default differs by what is trained."""
    return _field(default, TRAIN_BATCH_HELP, _count(1))


def results_field(default: str) -> Any:
    """``--out`` of a measurement: a path prefix for OUT.json and OUT.md."""
    return _field(default, RESULTS_HELP)


def nfes_field(default: tuple[int, ...]) -> Any:
    """``--nfes``: budgets in model calls."""
    return _field(default, NFES_HELP)


def clip_x0_field() -> Any:
    """``--clip-x0``, off by default."""
    return _field(False, CLIP_X0_HELP)


def rounds_field(default: int) -> Any:
    """``--rounds`` of a timing."""
    return _field(default, ROUNDS_HELP, _count(1))


# -- the fields a training run and a distillation run share (distillation's defaults are per round) --------------
_TRAINING: dict[str, tuple[str, Check | None]] = {
    "warmup": ("learning-rate warmup steps (per round when distilling)", _count(0)),
    "min_lr_frac": ("cosine decay to lr·min_lr_frac at the last step (of each round when distilling)",
                    lambda name, v: check_float(name, v, 0, 1)),
    "grad_clip": ("clip the gradient's norm to this", lambda name, v: check_float(name, v, 0, None, lo_open=True)),
    "ema_decay": ("decay of the weights' exponential moving average, in [0, 1) (restarted each round when "
                  "distilling)", lambda name, v: check_float(name, v, 0, 1, hi_open=True)),
    "ckpt_every": ("write a checkpoint every this many steps", _count(1)),
    "resume": ("continue the run in --out from its checkpoint (the same flags)", None),
    "stop_after": ("stop this invocation after N steps (0: run to the end); resume later", _count(0)),
    "n_toy": ("toy data: points drawn", _count(1)),
    "n_images": ("image data: the first N training images only (0: all); quick runs and tests", _count(0)),
}


def training_field(name: str, default: Any) -> Any:
    """The field ``name`` (``warmup``, ``ema_decay``, ...) with this default: its one help and its one check."""
    help_, check = _TRAINING[name]
    return _field(default, help_, check)


def check_fields(obj: Any) -> None:
    """Run the check of every field of the dataclass ``obj`` that has one (metadata ``check``), once; a field
    made with ``convert=True`` takes the checked value (seeds: a tuple of Python ints). Others keep their value."""
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        value = getattr(obj, f.name)
        if check is None or value is None:
            continue
        checked = check(f.name, value)
        if f.metadata.get("convert"):
            object.__setattr__(obj, f.name, checked)
