"""Instruments for the lessons: count a model's calls and time a block, so costs are measured.

    counted = CallCounter(model)
    with Stopwatch() as sw:
        ddim_sample(counted, schedule, x_T, steps=10)
    counted.calls, sw.seconds   # -> 10, 0.4...

    with progress(model, total=1000, desc="DDPM") as model_:   # a bar that moves once per model call
        ddpm_sample(model_, schedule, x_T)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core.checks import check_int
from ..core.samplers import Model


class CallCounter:
    """Wrap a model ``model(x_t, t) -> eps``; count calls and the timesteps each call saw.

    ``calls`` is the number of forward passes; ``timesteps`` lists the first entry of each
    call's t, in order (every sampler here uses one t per batch).
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.calls = 0
        self.timesteps: list[int] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.timesteps.append(int(t.reshape(-1)[0]))
        return self.model(x_t, t)

    def reset(self) -> None:
        self.calls = 0
        self.timesteps = []


class ModelProgress:
    """Wrap a model so a progress bar (tqdm.auto: a widget in JupyterLab) advances once per model call.

    Any sampler, solver or inversion takes the wrapped model unchanged, so a long loop shows how far it
    has got without the maths knowing about bars. ``total`` is the number of calls expected; extra
    arguments (a label y) pass through. The bar closes when the ``with`` block ends. Its cost is one
    counter update per call (tqdm redraws at most ten times a second).
    """

    def __init__(self, model: Callable[..., torch.Tensor], total: int, desc: str = "model calls") -> None:
        self.model = model
        self.total = check_int("total", total, 1)
        self.desc = desc
        self.bar: Any = None

    def __enter__(self) -> ModelProgress:
        self.bar = tqdm(total=self.total, desc=self.desc, unit="call", dynamic_ncols=True, mininterval=0.1)
        return self

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, *args: Any) -> torch.Tensor:
        out = self.model(x_t, t, *args)
        if self.bar is not None:
            self.bar.update(1)
        return out

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress(model: Callable[..., torch.Tensor], total: int, desc: str = "model calls") -> ModelProgress:
    """``with progress(model, total=N, desc=...) as model_:`` a model whose calls move a progress bar."""
    return ModelProgress(model, total, desc)


class Stopwatch:
    """Wall-clock time of a ``with`` block, in seconds (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.seconds = float("nan")
        self._t0 = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.seconds = time.perf_counter() - self._t0


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated runs of one block, in ms; ``median_ms`` is the figure to quote."""

    runs_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    def per_call(self, calls: int) -> float:
        """Median ms per model call, for a block that makes ``calls`` model calls."""
        return self.median_ms / check_int("calls", calls, 1)


def timed(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed; the median resists a busy moment."""
    repeats, warmup = check_int("repeats", repeats, 1), check_int("warmup", warmup, 0)
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        with Stopwatch() as sw:
            fn()
        runs.append(1000 * sw.seconds)
    return Timing(tuple(runs))
