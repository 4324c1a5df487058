"""What a run reports while it runs: wall clock, model calls, progress. One of each, for every layer above.

    counted = CallCounter(model)
    with Stopwatch() as sw:
        ddim_sample(counted, schedule, x_T, steps=10)
    counted.calls, sw.seconds   # -> 10, 0.4...

    with progress(model, total=1000, desc="DDPM") as model_:   # a bar that moves once per model call
        ddpm_sample(model_, schedule, x_T)

:data:`now` is the one clock (``time.perf_counter``), :class:`Stopwatch` the one timer (``sw.elapsed`` reads
it while the block still runs: a loop's running wall time or a deadline), :class:`CallCounter` the one call
counter and :func:`progress_bar` the one progress-bar constructor (tqdm.auto: a widget in JupyterLab, text on
stderr elsewhere). ``tests/store/test_instruments.py`` checks that no other module reads the clock or builds a
bar. They live here, below ``train/`` and ``evaluate/``, so that every layer that runs models can use them;
``core/`` stays free of clocks and bars.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import torch

from ..core.checks import check_int
from ..core.samplers import Model

Clock = Callable[[], float]  # seconds, as a float; a test passes a fake one

now: Clock = time.perf_counter  # seconds on the package's one clock: only differences mean anything


class Stopwatch:
    """Wall-clock time of a ``with`` block, in seconds, on ``clock`` (:data:`now` unless a test injects one).

    ``seconds`` is NaN until the block ends, then the block's time. ``elapsed`` is the time so far: read
    inside the block it reads the clock (a loop's running wall time, a deadline), after it it is ``seconds``.
    A loop too long to indent under ``with`` may write ``sw = Stopwatch().start()`` ... ``sw.stop()``.
    """

    def __init__(self, clock: Clock = now) -> None:
        self.seconds = float("nan")
        self._clock = clock
        self._t0: float | None = None

    def start(self) -> Stopwatch:
        """Start (or restart) timing; returns the stopwatch."""
        self.seconds = float("nan")
        self._t0 = self._clock()
        return self

    def stop(self) -> float:
        """Stop timing; returns ``seconds``, the time since :meth:`start`."""
        if self._t0 is None:
            raise ValueError("Stopwatch.stop() before start(): use `with Stopwatch() as sw:`")
        self.seconds = self._clock() - self._t0
        return self.seconds

    @property
    def elapsed(self) -> float:
        """Seconds since the start: the clock read now while running, ``seconds`` once stopped."""
        if self._t0 is None:
            raise ValueError("Stopwatch.elapsed was read before the stopwatch started: use `with Stopwatch() as sw:`")
        return self.seconds if not math.isnan(self.seconds) else self._clock() - self._t0

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class CallCounter:
    """Wrap a model ``model(x_t, t) -> eps``; count calls and the timesteps each call saw.

    ``calls`` is the number of forward passes; ``timesteps`` lists the first entry of each
    call's t, in order (every sampler here uses one t per batch). Extra arguments (a label y) pass through.
    """

    def __init__(self, model: Model | Callable[..., torch.Tensor]) -> None:
        self.model = model
        self.calls = 0
        self.timesteps: list[int] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, *args: Any) -> torch.Tensor:
        self.calls += 1
        self.timesteps.append(int(t.reshape(-1)[0]))
        return self.model(x_t, t, *args)

    def reset(self) -> None:
        self.calls = 0
        self.timesteps = []


def progress_bar(total: int | None, desc: str, enabled: bool = True, *, unit: str = "call",
                 iterable: Iterable[Any] | None = None, initial: int = 0) -> Any:
    """The package's one progress bar: tqdm.auto over ``total`` units (to stderr, as wide as the terminal).

    A disabled bar (``enabled=False``) draws nothing and still takes ``update``/``close``. With ``iterable``
    the bar is also an iterator over it; ``initial`` starts the count there (a resumed run).
    """
    from tqdm.auto import tqdm  # imported on first use, so that `import ddim_lesson` stays light

    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, mininterval=0.1)


class ModelProgress:
    """Wrap a model so a progress bar (:func:`progress_bar`) advances once per model call.

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
        self.bar = progress_bar(self.total, self.desc, unit="call")
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
