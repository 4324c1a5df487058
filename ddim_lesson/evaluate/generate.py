"""The one seeded, batched sampler: n samples drawn ``batch_size`` at a time, with a progress bar.

Every front-end draws through :func:`draw` (one batch: x_T → x0, one ``on_step`` per model call),
and every front-end seeds a batch by one rule. A batch with seed s starts from
``seeded_latents(s, B, shape)`` (a CPU generator seeded with s) and draws its η > 0 or σ̂ noise from
``noise_generator(s)`` (seeded s + NOISE_OFFSET), so changing η, steps or spacing never moves x_T.
Both generators are CPU generators whatever device the model is on (the noise is drawn on the CPU and
moved, core.forward.randn_like_on): a CUDA generator seeded alike draws other numbers, so a seed would
name other samples on a GPU than on a CPU, and Table 1 other samples than ``ddim-lesson sample``.
An explorer's one batch uses the explorer's seed; batch b of a run of several batches (Table 1,
the spread, the spacing and solver tables, ``ddim-lesson sample``) uses ``batch_seed(seed, b)``,
the same in every cell of a table, so cells differ only by the sampler. The rules themselves (the
generators, NOISE_OFFSET, batch_seed) live in core.seeds, with every other stream of the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..core.checks import check_int, expected_input_shape
from ..core.samplers import ddim_progressive, ddpm_progressive
from ..core.schedules import DEFAULT_SPACING, NoiseSchedule
from ..core.seeds import batch_seed, latents_generator, noise_generator
from ..store.instruments import Stopwatch, progress_bar

SIGMA_HAT = "sigma_hat"  # the row of Table 1 that samples with σ² = β (ddpm_sample(variance="beta"))
Row = float | str  # a row of Table 1 and the spread as its results file names it: an η, or SIGMA_HAT


def row_sampler(row: Row) -> tuple[float, bool]:
    """A table row as the samplers take it, (eta, sigma_hat): (η, False) for an η row, (0.0, True) for σ̂.

    The one place a row label becomes sampler arguments: η itself is always a float."""
    return (0.0, True) if row == SIGMA_HAT else (float(row), False)


def sample_shape(model: nn.Module) -> tuple[int, ...]:
    """The shape of one sample: (C, H, W) for a UNet, (dim,) for the 2-D MLP (checks.expected_input_shape)."""
    shape = expected_input_shape(model)
    if shape is None:
        raise ValueError(f"need a model of this package (a UNet or the 2-D MLP, with a config), "
                         f"got {type(model).__name__}")
    return shape


def image_shape(model: nn.Module, who: str = "Table 1") -> tuple[int, int, int]:
    """(C, H, W) of an image model, else ValueError naming ``who`` needs one."""
    shape = expected_input_shape(model)
    if shape is None or len(shape) != 3:
        raise ValueError(f"{who} needs an image model with a config (UNet), got {type(model).__name__}")
    return shape  # type: ignore[return-value]


def seeded_latents(seed: int, n: int, shape: tuple[int, ...]) -> torch.Tensor:
    """x_T ~ N(0, I) of shape (n, *shape) on the CPU, from ``core.seeds.latents_generator(seed)``."""
    g, n = latents_generator(seed), check_int("n", n, 1)
    return torch.randn((n, *shape), generator=g)


@torch.no_grad()
def draw(model: nn.Module, schedule: NoiseSchedule, x_T: torch.Tensor, *, steps: int, eta: float = 0.0,
         sigma_hat: bool = False, spacing: str = DEFAULT_SPACING, generator: torch.Generator | None = None,
         clip_x0: bool = True, on_step: Callable[[int], object] | None = None) -> torch.Tensor:
    """One batch x_T (B, ...) → x0 (B, ...) with DDIM at η, or with ``sigma_hat`` ancestral σ² = β sampling.

    The same steps as ddim_sample / ddpm_sample, one model call each; ``on_step(1)`` after every call.
    """
    if sigma_hat:
        walk = ddpm_progressive(model, schedule, x_T, clip_x0=clip_x0, generator=generator, variance="beta",
                                steps=steps, spacing=spacing)
    else:
        walk = ddim_progressive(model, schedule, x_T, steps=steps, eta=eta, spacing=spacing,
                                clip_x0=clip_x0, generator=generator)
    x0 = x_T
    for step in walk:
        x0 = step.x  # (B, ...); after the last step it is x0
        if on_step is not None:
            on_step(1)
    return x0


def sample_batch(model: nn.Module, schedule: NoiseSchedule, eta: float, steps: int,
                 shape: tuple[int, ...], seed: int, spacing: str, device: str,
                 on_step: Callable[[int], object] | None = None, *,
                 sigma_hat: bool = False) -> tuple[torch.Tensor, float]:
    """One batch of a table cell: x0 of ``shape`` from x_T seeded by ``seed``, and the sampling seconds (DDIM at
    ``eta``, or σ̂ with ``sigma_hat``)."""
    x_T = seeded_latents(seed, shape[0], shape[1:]).to(device)  # (B, ...)
    g = noise_generator(seed)  # on the CPU whatever the device: the one rule
    with Stopwatch() as sw:
        x0 = draw(model, schedule, x_T, steps=steps, eta=eta, sigma_hat=sigma_hat, spacing=spacing, generator=g,
                  on_step=on_step)
        if x0.device.type == "cuda":
            torch.cuda.synchronize()
    return x0, sw.seconds


@torch.no_grad()
def sample_cell(model: nn.Module, schedule: NoiseSchedule, eta: float, steps: int, n: int,
                batch_size: int, seed: int, spacing: str, device: str = "cpu",
                classifier: nn.Module | None = None,
                on_step: Callable[[int], object] | None = None, *,
                sigma_hat: bool = False) -> tuple[torch.Tensor, float]:
    """Draw n samples for one cell (DDIM at ``eta``, or σ̂ with ``sigma_hat``); returns (their classifier features
    (n, D), sampling seconds).

    Batch b starts from x_T drawn with seed batch_seed(seed, b), the same in every cell; the noise
    of η > 0 and σ̂ comes from a second generator. ``on_step(1)`` after every model call.
    """
    from .metrics import features

    shape = image_shape(model)
    feats, seconds = [], 0.0
    with channels_last(model):
        for b, start in enumerate(range(0, n, batch_size)):
            x0, secs = sample_batch(model, schedule, eta, steps, (min(batch_size, n - start), *shape),
                                    batch_seed(seed, b), spacing, device, on_step, sigma_hat=sigma_hat)
            seconds += secs
            feats.append(features(x0.cpu(), classifier))
    return torch.cat(feats), seconds


def sample_in_batches(model: nn.Module, schedule: NoiseSchedule, n: int, batch_size: int, steps: int = 50,
                      eta: float = 0.0, spacing: str = DEFAULT_SPACING, seed: int = 0, progress: bool = False,
                      clip_x0: bool | None = None) -> torch.Tensor:
    """Draw n samples with DDIM, ``batch_size`` at a time. Returns (n, *sample_shape) on the CPU.

    The model only ever sees batches of at most ``batch_size``, so peak memory is bounded by one
    batch whatever n is. The progress bar counts model calls over all batches (batches × steps).
    Batch b is seeded with ``batch_seed(seed, b)`` (x_T and the η > 0 noise from CPU generators),
    so the same seed and batch size give the same samples on any device. ``clip_x0`` defaults to
    True for image models (pixels live in [-1, 1]) and False for 2-D models, whose data reach ±2.2.
    """
    device = next(model.parameters()).device
    shape = sample_shape(model)
    clip = len(shape) == 3 if clip_x0 is None else clip_x0
    out = torch.empty((n, *shape))  # (n, ...) on the CPU
    starts = range(0, n, batch_size)
    bar = progress_bar(len(starts) * steps, "sample", progress)
    for k, i in enumerate(starts):
        b, s = min(batch_size, n - i), batch_seed(seed, k)
        bar.set_postfix(batch=f"{k + 1}/{len(starts)}")
        x_T = seeded_latents(s, b, shape).to(device)  # (b, ...)
        out[i : i + b] = draw(model, schedule, x_T, steps=steps, eta=eta, spacing=spacing,
                              generator=noise_generator(s), clip_x0=clip, on_step=bar.update).cpu()
    bar.close()
    return out


def n_batches(n: int, batch_size: int) -> int:
    """How many batches of at most ``batch_size`` make n."""
    return -(-n // batch_size)


@contextmanager
def channels_last(model: nn.Module) -> Iterator[nn.Module]:
    """Hold the model's 4-D weights in channels_last inside the block, then give them back contiguous.

    Convolutions run about 20 % faster so on a CPU (measured: 1.05 s vs 1.38 s per call of the
    shipped UNet at batch 250, one thread); outputs move by float rounding only. The caller's
    model object is the one converted, so wrappers that count calls still see them.
    """
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)
