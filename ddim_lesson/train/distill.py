"""Progressive distillation (Salimans & Ho 2022, Algorithm 2) as a resumable training run.

Round r halves the steps: its student (k steps) learns to do in one DDIM step what its teacher does in
two (see :mod:`ddim_lesson.core.distill`). The first student is a copy of the teacher's network that
predicts v; each later round starts from the last round's EMA student, which is also its teacher.
Each finished round is exported as ``student-K.*`` (K = its steps), with ``"sampling": {"steps": K,
"spacing": "trailing"}`` in its card; the last one also as ``model.*``, so ``pretrained(out)`` loads it.

Checkpoints, ``--resume`` and signals are ``train``'s (:mod:`~ddim_lesson.train.train_state`): data order
depends only on (seed, step), the noise generator is checkpointed, and a teacher is the exported file of
the round before, so a resumed run ends bit for bit where an uninterrupted one does.
"""

from __future__ import annotations

import copy
import math
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.distill import EpsFromV, distill_grid, distill_loss
from ..core.schedules import NoiseSchedule
from ..core.seeds import seed_global, train_generator
from ..store.checkpoints import downsample_losses, load_model, save_model
from ..store.data import load_dataset
from ..store.device import pick_device
from ..store.instruments import Stopwatch, progress_bar
from ..store.pretrained import load_any
from .distill_config import DistillConfig
from .loop import ema_update
from .train_config import batch_indices
from .train_state import SignalGuard, keep_numerics, numerics, open_run, restore_state, save_state

__all__ = ["DistillConfig", "DistillResult", "distill", "student_path"]


@dataclass
class DistillResult:
    student: nn.Module  # the last round's EMA student as model(x_t, t) -> eps (EpsFromV)
    schedule: NoiseSchedule
    losses: list[float]  # every training step, all rounds
    meta: dict[str, Any]


def student_path(out: str | Path, steps: int) -> Path:
    """Where the round whose student takes ``steps`` steps is exported (NAME, no suffix)."""
    return Path(out) / f"student-{steps}"


def distill(cfg: DistillConfig) -> DistillResult:
    """Run the halving rounds. SIGINT/SIGTERM stop after the current step with a checkpoint, raising
    :class:`~ddim_lesson.train.train_state.TrainingInterrupted`; ``cfg.resume`` continues from it."""
    with SignalGuard() as guard:
        return _distill(cfg, guard)


def _distill(cfg: DistillConfig, guard: SignalGuard) -> DistillResult:
    device = pick_device(cfg.device)
    resumed = open_run(cfg)  # before any work: --out writable, --resume flags match the checkpoint
    seed_global(cfg.seed)
    teacher0, schedule, tmeta, _ = load_any(cfg.teacher, device=device)
    dataset = tmeta.get("dataset", "")
    data = load_dataset(dataset, train=True, n_toy=cfg.n_toy, seed=cfg.seed)  # (N, ...)
    if data.ndim == 4 and cfg.n_images:
        data = data[: cfg.n_images]
    net = copy.deepcopy(teacher0.net if isinstance(teacher0, EpsFromV) else teacher0).train().requires_grad_(True)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    g = train_generator(cfg.seed)  # student steps and noise
    start, losses, wall = 0, [], 0.0
    now = numerics(device, False)  # threads, device, dtype: what --resume keeps, as train does
    if resumed is not None:
        start, losses, wall = restore_state(resumed, net, ema, opt, g, 0)
        keep_numerics(resumed.meta, now)  # the recorded thread count, so that the bits match
    ckpt = Path(cfg.out) / "checkpoint" if cfg.out else None
    teacher = _teacher_of(cfg, start // cfg.steps_per_round, teacher0, schedule, device)
    rounds_meta: list[dict[str, Any]] = list(resumed.meta.get("rounds", [])) if resumed is not None else []

    bar = progress_bar(cfg.steps, f"distill {dataset}", cfg.progress, unit="it", iterable=range(start, cfg.steps),
                       initial=start)
    sw = Stopwatch().start()  # this session's wall time; `wall` carries what earlier sessions took
    for step in bar:
        r, j = divmod(step, cfg.steps_per_round)
        k = cfg.student_steps(r)
        if j == 0:  # a new round: the student starts from the teacher, with a fresh optimizer
            if r > 0:
                teacher = EpsFromV(copy.deepcopy(ema).requires_grad_(False), schedule)
                net.load_state_dict(ema.state_dict())
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
        grid = distill_grid(schedule, k, cfg.spacing)  # the grid the teacher's DDIM visits on its schedule
        x0 = data[batch_indices(data.shape[0], cfg.batch_size, step, cfg.seed)].to(device)  # (B, ...)
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(j)
        loss = distill_loss(net, teacher, schedule, x0, grid, g)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"the loss became {float(loss)} at step {step} (round {r + 1}); no checkpoint "
                                     f"was written for it. Try a lower --lr (now {cfg.lr}), or --resume")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, net, min(cfg.ema_decay, (1 + j) / (10 + j)))
        losses.append(float(loss.detach()))
        if cfg.progress and step % 10 == 0:
            bar.set_postfix(round=f"{2 * k}->{k}", loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        done = step + 1
        round_done = done % cfg.steps_per_round == 0
        elapsed = wall + sw.elapsed
        if round_done:
            rounds_meta = [m for m in rounds_meta if m["steps"] != k] + [_round_meta(cfg, r, k, losses, elapsed)]
            if cfg.out:
                with guard.writing():
                    _export(student_path(cfg.out, k), ema, schedule, cfg, dataset, rounds_meta, elapsed, losses)
        stopping = cfg.stop_after > 0 and done - start >= cfg.stop_after
        signalled = guard.requested()
        if ckpt is not None and (done % cfg.ckpt_every == 0 or round_done or stopping or signalled):
            with guard.writing():  # a signal never cuts a checkpoint write short
                save_state(ckpt, net, ema, opt, [g.get_state()], schedule,
                           _run_meta(cfg, dataset, device, done, elapsed, losses) | {"rounds": rounds_meta}, losses)
        if signalled and done < cfg.steps:
            bar.close()
            raise guard.interrupted(done, cfg.steps, ckpt)
        if stopping:
            break
    bar.close()
    wall += sw.stop()
    meta = _run_meta(cfg, dataset, device, start + len(losses[start:]), wall, losses) | {"rounds": rounds_meta}
    if cfg.out and meta["steps"] == cfg.steps:
        with guard.writing():
            _export(Path(cfg.out) / "model", ema, schedule, cfg, dataset, rounds_meta, wall, losses)
    return DistillResult(EpsFromV(ema, schedule), schedule, losses, meta)


def _teacher_of(cfg: DistillConfig, r: int, teacher0: nn.Module, schedule: NoiseSchedule,
                device: torch.device) -> nn.Module:
    """Round r's teacher: the first teacher, or round r-1's exported student (read back bit for bit)."""
    if r == 0 or r >= cfg.rounds:
        return teacher0
    path = student_path(cfg.out, cfg.student_steps(r - 1))
    model, _, _ = load_model(path, device=device)
    return model.requires_grad_(False)


def _export(path: Path, ema: nn.Module, schedule: NoiseSchedule, cfg: DistillConfig, dataset: str,
            rounds: list[dict[str, Any]], wall: float, losses: list[float]) -> None:
    k = rounds[-1]["steps"]
    save_model(path, ema, schedule, prediction="v", sampling={"steps": k, "spacing": cfg.spacing},
               dataset=dataset, teacher=cfg.teacher, distill_config=asdict(cfg), rounds=rounds,
               steps=sum(m["train_steps"] for m in rounds), wall_time_s=round(wall, 1),
               command=_command(), torch=torch.__version__, threads=torch.get_num_threads(),
               loss_history=downsample_losses(losses))


def _round_meta(cfg: DistillConfig, r: int, k: int, losses: list[float], wall: float) -> dict[str, Any]:
    mine = losses[r * cfg.steps_per_round:]
    return {"round": r + 1, "teacher_steps": 2 * k, "steps": k, "train_steps": cfg.steps_per_round,
            "first_loss": sum(mine[:10]) / len(mine[:10]), "final_loss": sum(mine[-100:]) / len(mine[-100:]),
            "wall_time_s_at_end": round(wall, 1)}


def _command() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])


def _run_meta(cfg: DistillConfig, dataset: str, device: torch.device, steps: int, wall: float,
              losses: list[float]) -> dict[str, Any]:
    return {"dataset": dataset, "train_config": asdict(cfg), "steps": steps, "device": device.type,
            "wall_time_s": round(wall, 1), "command": _command(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "numerics": numerics(device, False),
            "final_loss": sum(losses[-100:]) / max(1, len(losses[-100:]))}
