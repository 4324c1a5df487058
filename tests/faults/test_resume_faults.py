"""A killed or interrupted training run always resumes, and ends bitwise equal to an uninterrupted run.

Real training processes (the ``ddim-lesson train`` command on two moons, a checkpoint every 3
steps) are stopped at random moments with SIGKILL or SIGINT, resumed, stopped again, and resumed
to the end. Every run must finish with every tensor (raw and EMA weights, optimizer state, noise
generator) and the loss log equal to those of a run that was never stopped. The processes are
forked from a server that has already imported torch, so each costs a fraction of a second.

A write that fails (a file-size limit, as on a full disk) leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddim_lesson.store.checkpoints import read_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")

STEPS = 240
ARGS = ["train", "--dataset", "two-moons", "--steps", str(STEPS), "--batch-size", "64", "--mlp-hidden", "32",
        "--mlp-depth", "2", "--n-toy", "2000", "--device", "cpu", "--no-progress", "--ckpt-every", "3",
        "--warmup", "10", "--lr", "3e-3"]
# Each trial: the signals sent to successive runs of the same folder; a last run then finishes it.
STARTED = "(test: the command starts)"
TRIALS = [(signal.SIGKILL, signal.SIGKILL), (signal.SIGINT, signal.SIGINT), (signal.SIGKILL, signal.SIGINT),
          (signal.SIGINT, signal.SIGKILL)] * 3


def run_cli(argv: list[str], log: str) -> None:
    """The body of a forked training process: ``ddim-lesson ARGV`` with its output in ``log``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # each line reaches the log as it is printed
    os.environ["DDIM_LESSON_THREADS"] = "1"  # the same thread count in every run: same float sums
    from ddim_lesson.cli.main import main

    print(STARTED, flush=True)  # from here on a SIGINT meets the command's own handling
    sys.exit(main(argv))


@pytest.fixture(scope="module")
def ctx():
    c = mp.get_context("forkserver")
    # torch._dynamo: imported by AdamW on first use, 1.3 s per process unless the server holds it already
    c.set_forkserver_preload(["torch._dynamo", "ddim_lesson.cli.main", "ddim_lesson.train.loop", "ddim_lesson.evaluate",
                              __name__])
    return c


def _start(ctx, out: Path, resume: bool, log: Path, extra: tuple[str, ...] | list[str] = ()):
    argv = ARGS + ["--out", str(out)] + (["--resume"] if resume else []) + list(extra)
    log.touch()
    p = ctx.Process(target=run_cli, args=(argv, str(log)))
    p.start()
    return p


def _wait_started(log: Path, p, timeout: float = 30.0) -> None:
    """Until the process is about to run the command, so a SIGINT meets the command, not the fork."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and p.is_alive() and STARTED not in log.read_text():
        time.sleep(0.005)


def _state(folder: Path) -> dict[str, torch.Tensor]:
    tensors, meta = read_checkpoint(folder / "checkpoint")
    model, model_meta = read_checkpoint(folder / "model")
    assert meta["steps"] == STEPS and model_meta["steps"] == STEPS
    return {**tensors, **{f"final.{k}": v for k, v in model.items()},
            "losses": torch.tensor(meta["losses"], dtype=torch.float64)}


def _assert_bitwise_equal(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], what: str) -> None:
    assert got.keys() == want.keys(), what
    differ = [k for k in want if not torch.equal(got[k], want[k])]
    assert not differ, f"{what}: {len(differ)} tensors differ from the uninterrupted run, e.g. {differ[:3]}"


def test_killed_and_interrupted_runs_resume_bitwise_equal(ctx, tmp_path):
    ref_log = tmp_path / "ref.log"
    ref = _start(ctx, tmp_path / "ref", False, ref_log)
    _wait_started(ref_log, ref)
    t0 = time.monotonic()
    ref.join(120)
    duration = time.monotonic() - t0  # from its first line to its end: the window the signals fall in
    assert ref.exitcode == 0, ref_log.read_text()
    want = _state(tmp_path / "ref")
    rng = random.Random(14)
    outcomes = {"killed": 0, "interrupted": 0, "finished first": 0}
    for i, signals in enumerate(TRIALS):
        out, moments, logs = tmp_path / f"run{i}", [], []
        for k, sig in enumerate(signals):
            logs.append(tmp_path / f"run{i}.{k}.log")
            p = _start(ctx, out, _any_ckpt(out), logs[-1])
            _wait_started(logs[-1], p)
            delay = rng.uniform(0.0, 0.9 * duration * (1 - _steps_done(out) / STEPS))  # within what is left
            moments.append(f"{sig.name}@{delay:.3f}s")
            time.sleep(delay)
            if p.is_alive():
                os.kill(p.pid, sig)
            p.join(60)
            if p.exitcode == 0:
                outcomes["finished first"] += 1
                break
            expect = -signal.SIGKILL if sig == signal.SIGKILL else 130
            assert p.exitcode == expect, (p.exitcode, moments, logs[-1].read_text())
            outcomes["killed" if sig == signal.SIGKILL else "interrupted"] += 1
        else:
            logs.append(tmp_path / f"run{i}.end.log")
            p = _start(ctx, out, _any_ckpt(out), logs[-1])
            p.join(120)
        text = "".join(log.read_text() for log in logs)
        assert p.exitcode == 0 and "Traceback" not in text, (moments, text)
        for line in text.splitlines():  # an interrupted run says one line, and no traceback
            assert not line.startswith("ddim-lesson:") or "SIGINT: stopped at step" in line \
                or line == "ddim-lesson: interrupted", (moments, text)
        _assert_bitwise_equal(_state(out), want, f"trial {i} ({', '.join(moments)})")
    stopped = outcomes["killed"] + outcomes["interrupted"]
    print(f"kill/resume: {outcomes} over {len(TRIALS)} runs; reference run {duration:.2f} s")
    assert stopped >= len(TRIALS) and outcomes["killed"] >= 4 and outcomes["interrupted"] >= 4, outcomes


def _steps_done(out: Path) -> int:
    try:
        return json.loads((out / "checkpoint.json").read_text())["steps"]
    except (OSError, ValueError, KeyError):
        return 0


def _any_ckpt(out: Path) -> bool:
    """Whether the folder holds a checkpoint, so the next run must --resume (a run killed before its
    first checkpoint starts afresh)."""
    return any((out / n).exists() for n in ("checkpoint.safetensors", "checkpoint.prev.safetensors",
                                            "checkpoint.json"))


def test_sigterm_stops_the_real_command_after_a_complete_checkpoint(tmp_path):
    """`python -m ddim_lesson train` as a user runs it: SIGTERM -> one line, exit 143, a checkpoint of that step."""
    out = tmp_path / "run"
    env = {**os.environ, "DDIM_LESSON_THREADS": "1"}
    args = [a if a != str(STEPS) else "100000" for a in ARGS]  # long enough never to finish by itself
    p = subprocess.Popen([sys.executable, "-m", "ddim_lesson", *args, "--ckpt-every", "50", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    end = time.monotonic() + 120
    while not (out / "checkpoint.safetensors").exists() and time.monotonic() < end and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ddim-lesson: SIGTERM: stopped at step ") and "--resume" in last, err
    step = int(last.split("stopped at step ")[1].split("/")[0])
    _, meta = read_checkpoint(out / "checkpoint")
    assert meta["steps"] == step and len(meta["losses"]) == step  # the step it stopped at is on disk


def test_a_write_that_hits_a_file_size_limit_keeps_the_previous_checkpoint(ctx, tmp_path):
    """RLIMIT_FSIZE (as a full disk): the next, larger checkpoint cannot be written. The run stops with
    one line, the previous checkpoint still loads, no half-written file is left, and a resume finishes."""
    out = tmp_path / "run"
    first = _start(ctx, out, False, tmp_path / "a.log")
    first.join(60)
    assert first.exitcode == 0
    ref = _state(out)
    for name in ("model.safetensors", "model.json"):
        (out / name).unlink()
    short = _start(ctx, tmp_path / "short", False, tmp_path / "s.log", ["--stop-after", str(STEPS - 30)])
    short.join(60)  # a run stopped 30 steps before the end ...
    assert short.exitcode == 0, (tmp_path / "s.log").read_text()
    size = (tmp_path / "short" / "checkpoint.safetensors").stat().st_size
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 8}, {size + 8})); "
            "from ddim_lesson.cli.main import main; sys.exit(main(sys.argv[1:]))")
    # ... resumed with --steps STEPS: its next checkpoints hold a longer loss log, so they are larger
    r = subprocess.run([sys.executable, "-c", code, *ARGS, "--out", str(tmp_path / "short"), "--resume"],
                       env={**os.environ, "DDIM_LESSON_THREADS": "1"}, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "could not write the checkpoint of step" in last and "the previous checkpoint there is intact" in last
    _, meta = read_checkpoint(tmp_path / "short" / "checkpoint")
    assert STEPS - 30 <= meta["steps"] < STEPS
    assert not list((tmp_path / "short").glob(".*.tmp"))  # the half-written file was removed
    resumed = _start(ctx, tmp_path / "short", True, tmp_path / "b.log")
    resumed.join(60)
    assert resumed.exitcode == 0
    _assert_bitwise_equal(_state(tmp_path / "short"), ref, "resumed after the failed write")
