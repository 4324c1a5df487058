"""A run keeps its thread count: killed and resumed under a changing load, it ends bitwise equal to a run that
was never stopped, with OMP_NUM_THREADS set and without it.

Float sums are ordered by torch's thread count (a 60-step two-moons run with 1 and with 2 threads differs by
1.2e-7), so a run whose count followed the load would differ from itself. Training records its count in the
checkpoint and ``--resume`` uses it; with nothing set, training uses 1 thread whatever the load. A helper
process starts and stops spinning a core all along, so the load each start and resume sees keeps changing.
"""

from __future__ import annotations

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

STEPS = 30
ARGS = ["train", "--dataset", "two-moons", "--steps", str(STEPS), "--batch-size", "64", "--mlp-hidden", "32",
        "--mlp-depth", "2", "--n-toy", "2000", "--device", "cpu", "--ckpt-every", "3", "--warmup", "10",
        "--lr", "3e-3"]
TRIALS = 1  # per setting; each run is a few seconds under the load
USER_VARS = ("DDIM_LESSON_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SPIN = ("import random, sys, time\nr = random.Random(int(sys.argv[1]))\nwhile True:\n"
        "    end = time.monotonic() + r.uniform(0.05, 0.5)\n    while time.monotonic() < end: pass\n"
        "    time.sleep(r.uniform(0.05, 0.5))\n")


def run_cli(argv: list[str], log: str, environ: dict[str, str]) -> None:
    """A forked ``ddim-lesson ARGV`` that sees ``environ`` as a process started with it would (torch's count too)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for var in USER_VARS:
        os.environ.pop(var, None)
    os.environ.update(environ)
    from ddim_lesson.cli.main import main
    from ddim_lesson.course import env

    torch.set_num_threads(env.torch_default_threads())  # what a fresh torch starts with under environ
    env._applied = None
    sys.exit(main(argv))


@pytest.fixture(scope="module")
def ctx():
    c = mp.get_context("forkserver")
    c.set_forkserver_preload(["torch._dynamo", "ddim_lesson.cli.main", "ddim_lesson.train.loop", __name__])
    warm = c.Process(target=time.sleep, args=(0,))  # start the server now, so that runs are timed without it
    warm.start()
    warm.join(300)
    return c


@pytest.fixture
def changing_load():
    """A process that starts and stops spinning one core, at random moments, for the whole test."""
    p = subprocess.Popen([sys.executable, "-c", SPIN, "19"])
    yield p
    p.kill()
    p.wait()


def _run(ctx, out: Path, log: Path, environ: dict[str, str], resume: bool, kill_after: float | None = None,
         sig: int = signal.SIGKILL) -> int | None:
    argv = ARGS + ["--out", str(out)] + (["--resume"] if resume else [])
    p = ctx.Process(target=run_cli, args=(argv, str(log), environ))
    p.start()
    if kill_after is not None:
        p.join(kill_after)
        if p.is_alive():
            os.kill(p.pid, sig)
    p.join(120)
    return p.exitcode


def _state(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = read_checkpoint(folder / "checkpoint")
    model, model_meta = read_checkpoint(folder / "model")
    assert meta["steps"] == STEPS == model_meta["steps"]
    return {**tensors, **{f"final.{k}": v for k, v in model.items()}}, meta


def _has_ckpt(out: Path) -> bool:
    return any((out / n).exists() for n in ("checkpoint.safetensors", "checkpoint.prev.safetensors"))


@pytest.mark.parametrize(("environ", "threads"), [({"OMP_NUM_THREADS": "2"}, 2), ({}, 1)],
                         ids=["OMP_NUM_THREADS=2", "nothing-set"])
def test_kill_and_resume_under_a_changing_load(ctx, tmp_path, changing_load, environ, threads):
    if threads > os.cpu_count():
        pytest.skip(f"needs {threads} cores")
    t0 = time.monotonic()
    assert _run(ctx, tmp_path / "ref", tmp_path / "ref.log", environ, False) == 0, (tmp_path / "ref.log").read_text()
    duration = time.monotonic() - t0
    want, meta = _state(tmp_path / "ref")
    assert meta["numerics"] == {"threads": threads, "device": "cpu", "dtype": "float32"}
    rng = random.Random(threads)
    stops = 0
    print(f"reference run: {duration:.2f} s")
    trial, scale = 0, 1.0
    while trial < TRIALS or (stops == 0 and trial < TRIALS + 3):  # under a falling load a run can outpace the
        # reference and finish before its kill moment: then try again with earlier kill moments
        out, log = tmp_path / f"run{trial}", tmp_path / f"run{trial}.log"
        for k in range(6):  # a SIGKILL and a SIGINT at random moments, then resumed to the end
            sig = (signal.SIGKILL, signal.SIGINT)[(trial + k) % 2] if k < 2 else None
            code = _run(ctx, out, log, environ, _has_ckpt(out),
                        rng.uniform(0.3, 0.9) * scale * duration if sig else None, sig or signal.SIGKILL)
            if code == 0:
                break
            stops += 1
        text = log.read_text()
        assert code == 0 and "Traceback" not in text, text
        got, meta = _state(out)
        assert meta["numerics"]["threads"] == threads
        differ = [k for k in want if not torch.equal(got[k], want[k])]
        assert got.keys() == want.keys() and not differ, f"trial {trial}: {len(differ)} tensors differ: {differ[:3]}"
        if "--resume" in text or "resuming" in text:
            assert f"torch uses {threads} thread(s), the count this run was started with" in text, text
        trial, scale = trial + 1, scale * 0.5
    assert stops >= TRIALS, "no run was stopped: the kill moments missed every run"


def test_resume_keeps_the_recorded_count_over_a_new_setting(ctx, tmp_path):
    """Started with OMP_NUM_THREADS=2, resumed with OMP_NUM_THREADS=1: the resume uses 2, says so, and ends
    bitwise equal to a run at 2 threads that was never stopped (it would differ at 1 thread)."""
    if os.cpu_count() < 2:
        pytest.skip("needs 2 cores")
    two, one = {"OMP_NUM_THREADS": "2"}, {"OMP_NUM_THREADS": "1"}
    assert _run(ctx, tmp_path / "ref", tmp_path / "ref.log", two, False) == 0
    log = tmp_path / "run.log"
    argv_stop = ARGS + ["--out", str(tmp_path / "run"), "--stop-after", "10"]
    p = ctx.Process(target=run_cli, args=(argv_stop, str(log), two))
    p.start()
    p.join(120)
    assert p.exitcode == 0, log.read_text()
    assert _run(ctx, tmp_path / "run", log, one, True) == 0, log.read_text()
    text = log.read_text()
    assert "torch uses 1 thread(s): set by OMP_NUM_THREADS" in text  # the user's setting, seen at start
    assert "torch uses 2 thread(s), the count this run was started with" in text  # then the record wins
    want, _ = _state(tmp_path / "ref")
    got, meta = _state(tmp_path / "run")
    assert meta["numerics"]["threads"] == 2
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_fewer_cores_now_says_not_bitwise_and_continues(tmp_path, capsys, monkeypatch):
    from ddim_lesson.train.train_state import keep_numerics

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    now = {"threads": 1, "device": "cpu", "dtype": "float32"}
    differ = keep_numerics({"numerics": {"threads": 8, "device": "cpu", "dtype": "float32"}}, now)
    err = capsys.readouterr().err
    assert differ == ["threads"] and torch.get_num_threads() == before
    assert "started with 8 thread(s) but only 1 core(s)" in err and "will not be bitwise equal" in err
    differ = keep_numerics({"numerics": {"threads": 1, "device": "cuda (X)", "dtype": "bfloat16 autocast"}}, now)
    err = capsys.readouterr().err
    assert differ == ["device", "dtype"] and err.count("will not be bitwise equal") == 2
    assert keep_numerics({}, dict(now)) == ["threads"] and "does not record its thread count" in capsys.readouterr().err
