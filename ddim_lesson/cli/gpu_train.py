"""The GPU run's training stage: the ``fashion-mnist`` recipe, scaled, in whatever time is left, stopping itself.

The run is sized from its own speed. Two short sessions inside the warmup (``--stop-after``, then
``--resume``: the learning rate in the warmup does not depend on ``--steps``) time the steady step from the
checkpoints' wall clocks; the third session resumes with the number of steps that fits the time left
(:func:`steps_that_fit`), so the cosine decay ends when the time does and the run is one ordinary run of that
many steps (``ddim-lesson train ... --steps N`` would compute the same). A timer is the safety net: at the
deadline it sends this process SIGINT, which the training loop turns into a checkpoint and a clean stop
(train_state.SignalGuard). Either way the EMA weights of the newest checkpoint are exported.

    rec = train_stage(recipe, deadline=now() + 240, work=Path("/tmp/run"), export_to=out / "gpu-...")
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..store.checkpoints import export_ema, load_checkpoint
from ..store.instruments import Stopwatch, now
from ..train.loop import train
from ..train.train_config import TrainConfig

SAFETY = 0.85  # the share of the time left that the final session plans to use; the timer guards the rest


def steps_that_fit(done: int, step_s: float, overhead_s: float, left_s: float, max_steps: int) -> int:
    """The total step count of a run that has done ``done`` steps, takes ``step_s`` per step plus ``overhead_s``
    to start a session, and has ``left_s`` seconds: done + ⌊(left_s − overhead_s)·SAFETY / step_s⌋, at most
    ``max_steps``, at least ``done`` (nothing more fits)."""
    if not (step_s > 0 and math.isfinite(step_s)):
        raise ValueError(f"step_s must be a finite number > 0, got {step_s}")
    more = max(0.0, (left_s - overhead_s) * SAFETY / step_s)
    return max(done, min(max_steps, done + int(more)))


def command_line(cfg: TrainConfig) -> str:
    """The ``ddim-lesson train`` command that computes the same run as ``cfg`` (flags that differ from the defaults)."""
    default, flags = TrainConfig(), []
    for key, value in asdict(cfg).items():
        if key in ("progress", "stop_after", "resume", "device") or value == getattr(default, key):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return "ddim-lesson train " + " ".join(shlex.quote(f) for f in flags)


class _Deadline:
    """SIGINT to this process at ``deadline`` (seconds on ``store.instruments.now``) while armed; the loop
    checkpoints and stops."""

    def __init__(self, deadline: float) -> None:
        self.armed = threading.Event()
        self.fired = False
        self.timer = threading.Timer(max(0.0, deadline - now()), self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        if self.armed.is_set():
            self.fired = True
            os.kill(os.getpid(), signal.SIGINT)

    def __enter__(self) -> _Deadline:
        self.armed.set()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed.clear()
        self.timer.cancel()


def _session(cfg: TrainConfig, timer: _Deadline) -> tuple[float, bool]:
    """One ``train`` call; (its seconds, whether the deadline stopped it). A SIGINT that is not the timer's
    (Ctrl-C) goes on up; one that lands between two steps' guards is the timer's stop all the same."""
    sw = Stopwatch().start()
    try:
        train(cfg)
        return sw.stop(), False
    except KeyboardInterrupt:  # TrainingInterrupted: a checkpoint of the last whole step is on disk
        if not timer.fired:
            raise
        return sw.stop(), True


def _meta(work: Path) -> dict[str, Any]:
    return load_checkpoint(work / "checkpoint")[1]


def train_stage(recipe: TrainConfig, deadline: float, work: Path, export_to: Path,
                max_steps: int = 100_000) -> dict[str, Any]:
    """Train ``recipe`` (its ``steps`` ignored) in ``work`` until ``deadline`` (seconds on ``now``) at the latest,
    then export the EMA weights to ``export_to``; returns what happened, for the results file."""
    probe1, probe2 = max(1, recipe.warmup // 4), max(1, recipe.warmup // 2)  # together inside the warmup
    base = replace(recipe, steps=max(max_steps, probe1 + probe2 + 1), out=str(work), progress=False,
                   ckpt_every=10**9)
    rec: dict[str, Any] = {"work": str(work)}
    with _Deadline(deadline) as timer:
        first_s, stopped = _session(replace(base, stop_after=probe1), timer)  # CUDA start-up and autotuning here
        wall1 = _meta(work)["wall_time_s"]
        if not stopped:
            second_s, stopped = _session(replace(base, stop_after=probe2, resume=True), timer)
        if not stopped:
            meta = _meta(work)
            loop_s = meta["wall_time_s"] - wall1  # the loop's own clock (0.1 s resolution): steady steps
            step_s = max(1e-6, loop_s / probe2)
            overhead_s = max(0.0, second_s - loop_s)  # loading the data and the model, resuming, checkpointing
            total = steps_that_fit(meta["steps"], step_s, overhead_s, deadline - now(), max_steps)
            rec |= {"probe_steps": [probe1, probe2], "seconds_per_step": step_s, "session_overhead_s": overhead_s,
                    "first_session_s": first_s, "planned_steps": total}
            ckpt_every = max(probe2, total // 10)
            final = replace(base, steps=total, resume=True, ckpt_every=ckpt_every)
            if total > meta["steps"]:
                _, stopped = _session(final, timer)
            rec["command"] = command_line(replace(final, out=recipe.out or "runs/fashion-mnist-gpu",
                                                  ckpt_every=recipe.ckpt_every, resume=False, device="auto"))
        rec["stopped_by_deadline"] = timer.fired or stopped
    meta = _meta(work)
    path = export_ema(work / "checkpoint", export_to)
    rec |= {"steps": meta["steps"], "wall_time_s": meta["wall_time_s"], "final_loss": meta["final_loss"],
            "params": meta["params"], "device": meta["device"], "train_config": meta["train_config"],
            "model": str(path), "completed": meta["steps"] == meta["train_config"]["steps"]}
    return rec
