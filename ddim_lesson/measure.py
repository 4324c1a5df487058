"""Instruments for the lessons: count a model's calls and time a block, so costs are measured.

    counted = CallCounter(model)
    with Stopwatch() as sw:
        ddim_sample(counted, schedule, x_T, steps=10)
    counted.calls, sw.seconds   # -> 10, 0.4...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
