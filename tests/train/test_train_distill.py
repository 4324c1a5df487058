"""``ddim-lesson distill`` end to end on two-moons: each round's student is exported with its sampling card
and loads through ``pretrained(path)``; a run stopped anywhere (mid-round, on a round boundary, by SIGKILL
or SIGTERM) and resumed ends bit for bit where an uninterrupted one does; bad flags are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.cli.main import main
from ddim_lesson.core.distill import EpsFromV
from ddim_lesson.evaluate.moons import near_fraction
from ddim_lesson.store.checkpoints import read_checkpoint
from ddim_lesson.train.distill import DistillConfig, distill, student_path


def cfg(out, **kw):
    base = dict(teacher="two-moons", start_steps=8, final_steps=2, steps_per_round=12, batch_size=64, lr=1e-3,
                warmup=3, ckpt_every=5, device="cpu", progress=False, n_toy=2000, out=str(out))
    return DistillConfig(**(base | kw))


def _tensors(path):
    return read_checkpoint(path)[0]


def test_rounds_are_exported_with_their_card_and_sample_through_ddim(tmp_path):
    res = distill(cfg(tmp_path / "run", steps_per_round=80, batch_size=256))
    assert res.meta["steps"] == 160 and [m["steps"] for m in res.meta["rounds"]] == [4, 2]
    x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    teacher, schedule = dl.pretrained("two-moons")
    for k in (4, 2):
        meta = json.loads(student_path(tmp_path / "run", k).with_suffix(".json").read_text())
        assert meta["sampling"] == {"steps": k, "spacing": "trailing"} and meta["prediction"] == "v"
        assert meta["threads"] == torch.get_num_threads()  # the card says how many threads timed its wall clock
        student, sched = dl.pretrained(str(student_path(tmp_path / "run", k)))
        assert isinstance(student, EpsFromV) and torch.equal(sched.betas, schedule.betas)
        x = dl.ddim_sample(student, sched, x_T, steps=k, clip_x0=False)
        near_s = near_fraction(x)
        near_d = near_fraction(dl.ddim_sample(teacher, schedule, x_T, steps=k, clip_x0=False))
        assert near_s > near_d + 0.2, (k, near_s, near_d)  # measured: 0.39 vs 0.10 at 4 steps
    last, _ = dl.pretrained(str(tmp_path / "run"))  # the run folder: its model.* is the last student
    for a, b in zip(last.state_dict().values(), res.student.state_dict().values()):
        assert torch.equal(a, b)


def test_first_round_starts_from_the_teachers_weights_and_later_rounds_from_the_last_student(tmp_path):
    res = distill(cfg(tmp_path / "run", steps_per_round=1, lr=1e-12, warmup=0))
    teacher, _ = dl.pretrained("two-moons")
    for (name, a), b in zip(res.student.net.state_dict().items(), teacher.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0, msg=name)  # lr 1e-12: two rounds leave it unchanged


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return distill(cfg(out)), out


@pytest.mark.parametrize("stops", [(7,), (12,), (5, 12, 17)])
def test_resume_ends_bit_for_bit_where_the_uninterrupted_run_ends(tmp_path, full_run, stops):
    full, full_out = full_run
    out = tmp_path / "part"
    done = 0
    for i, s in enumerate(stops):
        part = distill(cfg(out, stop_after=s - done, resume=i > 0))
        done = s
        assert part.meta["steps"] == s and not (out / "model.json").exists()
    resumed = distill(cfg(out, resume=True))
    assert resumed.losses == full.losses
    for name in ("model", "student-4", "student-2"):
        a, b = _tensors(out / name), _tensors(full_out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    restarted = distill(cfg(tmp_path / "restart", stop_after=5))  # a restart is not a resume: it differs
    assert restarted.losses != full.losses[stops[0]:stops[0] + 5]


def test_resume_keeps_the_recorded_thread_count_whatever_the_count_now(tmp_path, capsys):
    """As train does: the checkpoint records the run's numerics, and --resume sets torch back to the recorded thread
    count (so the run continues bit for bit) and says so, even when the count was changed in between."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        full = distill(cfg(tmp_path / "full"))  # uninterrupted, at 1 thread
        out = tmp_path / "part"
        distill(cfg(out, stop_after=7))
        assert read_checkpoint(out / "checkpoint")[1]["numerics"]["threads"] == 1
        torch.set_num_threads(2)  # the load changed, or the user did: the rule would now pick another count
        resumed = distill(cfg(out, resume=True))
        assert torch.get_num_threads() == 1 and resumed.meta["numerics"]["threads"] == 1
        assert "torch uses 1 thread(s), the count this run was started with" in capsys.readouterr().err
        assert resumed.losses == full.losses
    finally:
        torch.set_num_threads(before)


def test_resume_refuses_other_flags_and_a_fresh_start_over_a_checkpoint(tmp_path):
    distill(cfg(tmp_path / "run", stop_after=3))
    with pytest.raises(ValueError, match="--lr 0.002 \\(the checkpoint has 0.001\\)"):
        distill(cfg(tmp_path / "run", lr=2e-3, resume=True))
    with pytest.raises(ValueError, match="pass --resume"):
        distill(cfg(tmp_path / "run"))


ARGS = ["distill", "--teacher", "two-moons", "--start-steps", "8", "--final-steps", "2", "--steps-per-round", "60",
        "--batch-size", "64", "--lr", "1e-3", "--n-toy", "2000", "--device", "cpu", "--ckpt-every", "7"]


def _run(out, *extra, timeout=300):
    env = {**os.environ, "DDIM_LESSON_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ddim_lesson", *ARGS, "--no-progress", "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def full_cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("full_cli")
    full = _run(out)
    assert full.returncode == 0 and "2-step student" in full.stdout, full.stderr
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_real_command_killed_or_stopped_resumes_bit_for_bit(tmp_path, full_cli, sig):
    out = tmp_path / "part"
    env = {**os.environ, "DDIM_LESSON_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "ddim_lesson", *ARGS, "--no-progress", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    end = time.monotonic() + 120
    while not (out / "student-4.json").exists() and time.monotonic() < end and p.poll() is None:
        time.sleep(0.01)  # into round 2: its teacher is the exported round-1 student
    time.sleep(0.1)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert p.returncode == 143 and "Traceback" not in err and "--resume" in err.strip().splitlines()[-1], err
    else:
        assert p.returncode == -signal.SIGKILL
    stopped = read_checkpoint(out / "checkpoint")[1]["steps"]
    assert 56 <= stopped < 120, stopped  # 56: killed between the round-1 export and its checkpoint
    again = _run(out, "--resume")
    assert again.returncode == 0, again.stderr
    a, b = _tensors(out / "model"), _tensors(full_cli / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("flags, match", [
    (["--start-steps", "48", "--final-steps", "4"], "power of 2"),
    (["--spacing", "leading"], "must be 'trailing'"),
    (["--lr", "0"], "lr must be a finite number in (0, 1), got 0.0"),
    ([], "--out is required"),
])
def test_bad_flags_are_one_line(capsys, flags, match):
    out = [] if not flags else ["--out", "/tmp/never-written"]
    assert main(["distill", "--teacher", "two-moons", *flags, *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
