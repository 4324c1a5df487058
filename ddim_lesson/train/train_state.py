"""A training run's state on disk: save it, find and check it for ``--resume``, stop cleanly on a signal.

- :func:`save_state` writes raw + EMA weights, optimizer state, the noise generators and the loss
  log as one checkpoint file, keeping the previous one (``checkpoint.prev.safetensors``).
- :func:`open_run` is called before any work: it checks ``--out`` can be written, refuses to start
  afresh over a run's checkpoint, and for ``--resume`` loads the newest complete checkpoint and
  compares the flags with its config, naming every difference in one line.
- :class:`SignalGuard` turns SIGINT/SIGTERM into a request to stop after the current step; a
  checkpoint write in progress always finishes. Training then raises :class:`TrainingInterrupted`.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..core.schedules import NoiseSchedule
from ..store.atomic import previous_path
from ..store.checkpoints import CheckpointError, Loaded, load_newest, model_from_meta, model_meta, save_checkpoint
from ..store.device import announce_threads, available_cores
from ..store.locks import out_lock
from ..store.outputs import check_writable
from ..store.pretrained import WEIGHTS_DIR

# TrainConfig fields that may change between an interrupted run and its --resume: where and how it runs,
# not what it computes. Every other field must match the checkpoint's train_config.
RUN_ONLY = ("steps", "device", "compile", "bf16", "out", "ckpt_every", "resume", "stop_after", "progress", "extra")


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after a complete step (and a complete checkpoint)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


# -- writing and reading the state ------------------------------------------------------------
def save_state(path: Path, model: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer, rngs: list[torch.Tensor],
               schedule: NoiseSchedule, run_meta: dict[str, Any], losses: list[float]) -> None:
    """One checkpoint file with everything a resumed run needs; the previous one is kept beside it."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        tensors |= {f"opt.{pid}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)) for k, v in st.items()}
    tensors |= {f"rng.noise.{r}": state for r, state in enumerate(rngs)}
    meta = {**model_meta(model, schedule), **run_meta, "losses": losses,
            "opt_groups": [{k: v for k, v in grp.items() if k != "params"} for grp in opt_state["param_groups"]]}
    try:
        save_checkpoint(path, tensors, meta, keep_previous=True)
    except OSError as e:  # disk full, a file-size limit, a folder gone: the checkpoint on disk is the previous one
        err = OSError(f"could not write the checkpoint of step {run_meta.get('steps')} to {path}.safetensors "
                      f"({e.strerror or e}); the previous checkpoint there is intact: free some space, then "
                      "continue with --resume")
        err.errno = e.errno
        raise err from None


def restore_state(loaded: Loaded, model: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer,
                  g: torch.Generator, rank: int) -> tuple[int, list[float], float]:
    """Load a checkpoint's state into model, ema, opt and g; returns (steps done, losses, wall seconds)."""
    tensors, meta = loaded.tensors, loaded.meta
    model.load_state_dict(model_from_meta(tensors, meta, "model.").state_dict())
    ema.load_state_dict(model_from_meta(tensors, meta, "ema.").state_dict())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    groups = opt.state_dict()["param_groups"]
    key = f"rng.noise.{rank}"
    if key not in tensors:
        raise ValueError(f"{loaded.path} was written by a run with fewer processes; resume with the same world size")
    try:
        for grp, saved in zip(groups, meta["opt_groups"], strict=True):
            grp.update({k: v for k, v in saved.items() if k != "params"})
        opt.load_state_dict({"state": state, "param_groups": groups})
        g.set_state(tensors[key])
        return int(meta["steps"]), [float(v) for v in meta["losses"]], float(meta["wall_time_s"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{loaded.path} holds no usable optimizer or generator state ({e}); it is not a "
                              "training checkpoint of this version: start a new run") from None


# -- before any work: the output folder, and what --resume continues ------------------------
def has_checkpoint(path: Path) -> bool:
    """True if ``path`` (NAME, no suffix) names a checkpoint on disk, complete or not."""
    st = path.with_name(path.name + ".safetensors")
    return st.exists() or previous_path(st).exists() or path.with_name(path.name + ".json").exists()


def open_run(cfg: Any, rank: int = 0, locks: ExitStack | None = None) -> Loaded | None:
    """Check ``cfg.out`` before any work. Returns the checkpoint to resume, or None to start afresh.

    Raises ValueError (one line) if --out cannot be written or is the shipped models' folder, if another
    command holds it (with ``locks``, the folder's lock is taken there and held until it closes), if a
    checkpoint is there without --resume, if --resume finds none, or if a flag differs from the checkpoint's.
    """
    if not cfg.out:
        if cfg.resume:
            raise ValueError("--resume needs --out: the folder of the run to continue")
        return None
    if rank == 0:
        check_writable(cfg.out, folder=True, what="--out")
        shipped = WEIGHTS_DIR.resolve()
        if Path(cfg.out).resolve() == shipped or shipped in Path(cfg.out).resolve().parents:
            raise ValueError(f"--out {cfg.out} is inside the shipped models' folder {WEIGHTS_DIR}; train into "
                             "another folder (runs/NAME), then `ddim-lesson export` the model you want to ship")
        if locks is not None:  # one command per folder; taken before the half-written files are cleared
            locks.enter_context(out_lock(cfg.out, folder=True))
        for tmp in Path(cfg.out).glob(".*.tmp"):  # half-written files of a killed run
            if tmp.name.startswith((".checkpoint.", ".model.")):
                tmp.unlink(missing_ok=True)
    ckpt = Path(cfg.out) / "checkpoint"
    if not cfg.resume:
        if has_checkpoint(ckpt):
            raise ValueError(f"{cfg.out} already holds a training checkpoint ({ckpt}.safetensors); pass --resume "
                             "to continue it, or another --out (or delete that folder) to start a new run")
        return None
    if not has_checkpoint(ckpt):
        raise ValueError(f"--resume: there is no checkpoint in {cfg.out} (no {ckpt.name}.safetensors); "
                         "drop --resume to start a new run there")
    loaded = load_newest(ckpt)
    check_resume_flags(cfg, loaded.meta, loaded.path)
    if rank == 0:
        print(f"resuming from {loaded.note()}", file=sys.stderr)
    return loaded


def numerics(device: torch.device, bf16: bool) -> dict[str, Any]:
    """What changes a run's bits besides its flags: torch's CPU thread count, the device and the dtype."""
    name = f"{device.type} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type
    dtype = "bfloat16 autocast" if device.type == "cuda" and bf16 else "float32"
    return {"threads": torch.get_num_threads(), "device": name, "dtype": dtype}


def keep_numerics(meta: dict[str, Any], now: dict[str, Any], rank: int = 0) -> list[str]:
    """Set torch's thread count to the one the checkpoint recorded, and say so; returns what still differs.

    A run is bitwise reproducible at one thread count (float sums are ordered by it), so a resumed run
    uses the recorded count whatever the load or the user's setting now. If it cannot (the count is more
    than the cores this process may use), or the device or dtype changed, it says that the result will
    not be bitwise equal to an uninterrupted run, and continues.
    """
    saved = meta.get("numerics")
    say = (lambda m: print(m, file=sys.stderr)) if rank == 0 else (lambda m: None)
    if not isinstance(saved, dict):
        say(f"--resume: the checkpoint does not record its thread count (an older version); continuing with "
            f"{now['threads']} thread(s): the result may not be bitwise equal to an uninterrupted run")
        return ["threads"]
    cores = available_cores()  # the thread rule's count of the cores this process may use
    differ = []
    want = saved.get("threads")
    if isinstance(want, int) and not isinstance(want, bool) and 1 <= want <= cores:
        if want != now["threads"]:
            torch.set_num_threads(want)
            now["threads"] = want
        if rank == 0:  # the one announcement's format: it corrects the rule's line printed at start
            announce_threads(f"{want} thread(s), the count this run was started with (recorded in its checkpoint, "
                             "kept by --resume), so that it continues bit for bit")
    else:
        differ.append("threads")
        say(f"--resume: the run was started with {want} thread(s) but only {cores} core(s) are available; continuing "
            f"with {now['threads']}: the result will not be bitwise equal to an uninterrupted run")
    for key in ("device", "dtype"):
        if saved.get(key) != now[key]:
            differ.append(key)
            say(f"--resume: the run was started on {key} {saved.get(key)}, this one is on {now[key]}: the result "
                "will not be bitwise equal to an uninterrupted run")
    return differ


def check_resume_flags(cfg: Any, meta: dict[str, Any], where: Path) -> None:
    """Compare the flags with the checkpoint's train_config; one ValueError naming each difference."""
    saved = meta.get("train_config")
    if not isinstance(saved, dict) or not isinstance(meta.get("steps"), int):
        raise CheckpointError(f"{where} holds no train_config and steps: it was not written by ddim-lesson train, "
                              "so it cannot be resumed; start a new run")
    diffs = []
    for f in dataclasses.fields(cfg):
        if f.name in RUN_ONLY:
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        mine, theirs = _plain(getattr(cfg, f.name)), _plain(saved.get(f.name, default))
        if mine != theirs:
            diffs.append(f"{_flag(f.name)} {_show(mine)} (the checkpoint has {_show(theirs)})")
    if cfg.steps < meta["steps"]:
        diffs.append(f"--steps {cfg.steps} is below the {meta['steps']} steps already done")
    if diffs:
        raise ValueError(f"--resume: the flags differ from the checkpoint {where} (step {meta['steps']}): "
                         + "; ".join(diffs) + ". Pass the checkpoint's values to continue it, or another --out "
                         "to start a new run")


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# -- signals ---------------------------------------------------------------------------------
class SignalGuard:
    """While active, SIGINT and SIGTERM only ask training to stop at the next step boundary.

    A second signal outside a checkpoint write stops at once (KeyboardInterrupt); inside a write,
    every signal waits for the write to finish. Only the main thread can install handlers; in any
    other thread the guard does nothing and signals keep their usual effect.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._writing = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None and not self._writing:
            raise KeyboardInterrupt  # asked twice: stop now (the checkpoint on disk is complete)
        self.signum = self.signum or signum

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A block that signals never interrupt (a checkpoint write)."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1

    def requested(self, world: int = 1, device: torch.device | None = None) -> bool:
        """Whether any rank got a signal (so that all ranks stop at the same step)."""
        if world == 1:
            return self.signum is not None
        flag = torch.tensor([float(self.signum is not None)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def interrupted(self, done: int, steps: int, ckpt: Path | None) -> TrainingInterrupted:
        """The exception to raise once training has stopped on a signal after ``done`` steps."""
        signum = self.signum or signal.SIGINT
        where = (f"checkpoint at step {done} in {ckpt}.safetensors; continue with the same flags plus --resume"
                 if ckpt is not None else "nothing saved (no --out)")
        return TrainingInterrupted(f"{signal.Signals(signum).name}: stopped at step {done}/{steps}, {where}", signum)
