"""cli/distill_command.py: ``ddim-lesson distill``'s flags come from DistillConfig through the bridge (its own
example parses to the config it describes), --out is required before any work, an interrupted run exits with
the shell's code, and the summary line names the ladder of steps it trained. The training itself is replaced
here by a stand-in (tests/train/test_train_distill.py runs it end to end)."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest

from ddim_lesson.cli import distill_command
from ddim_lesson.cli.flags import CLIError, dataclass_from_args
from ddim_lesson.cli.main import build_parser
from ddim_lesson.train import distill as train_distill
from ddim_lesson.train.distill_config import DistillConfig
from ddim_lesson.train.train_state import TrainingInterrupted


def _args(line: str):
    return build_parser().parse_args(shlex.split(line)[1:])


def test_the_example_parses_to_the_config_it_describes():
    args = _args(distill_command.EXAMPLE)
    assert args.func is distill_command.cmd_distill
    cfg = dataclass_from_args(DistillConfig, args)
    words = shlex.split(distill_command.EXAMPLE)
    given = {w[2:].replace("-", "_"): v for w, v in zip(words, words[1:]) if w.startswith("--")}
    assert given, words
    for name, text in given.items():
        assert str(getattr(cfg, name)) == text or getattr(cfg, name) == type(getattr(cfg, name))(text), name
    assert (cfg.start_steps, cfg.final_steps, cfg.rounds) == (64, 1, 6)


@pytest.fixture
def fake_distill(monkeypatch: pytest.MonkeyPatch):
    """distill(cfg) replaced: records its configs and returns what ``behaviour`` says."""
    calls: list[DistillConfig] = []
    state = {"behaviour": "finish"}

    def fake(cfg: DistillConfig):
        calls.append(cfg)
        if state["behaviour"] == "sigterm":
            raise TrainingInterrupted("stopped after step 3 (SIGTERM)", 15)
        done = cfg.steps if state["behaviour"] == "finish" else 3
        return SimpleNamespace(meta={"steps": done, "wall_time_s": 1.5})

    monkeypatch.setattr(train_distill, "distill", fake)
    return calls, state


def test_out_is_required_before_any_training(fake_distill):
    calls, _ = fake_distill
    with pytest.raises(CLIError, match="--out is required"):
        distill_command.cmd_distill(_args("ddim-lesson distill --teacher two-moons --no-progress"))
    assert calls == []


def test_a_finished_run_names_its_ladder_and_a_stopped_one_says_how_to_go_on(fake_distill, capsys, tmp_path):
    calls, state = fake_distill
    line = f"x distill --teacher two-moons --start-steps 16 --final-steps 2 --steps-per-round 5 --no-progress " \
           f"--out {tmp_path}"
    distill_command.cmd_distill(_args(line))
    out = capsys.readouterr().out
    assert "over 3 rounds (16 -> 8 -> 4 -> 2 steps), 5 steps each" in out, out
    assert f"the 2-step student is in {tmp_path}/model.*" in out
    assert calls[0].steps == 15
    state["behaviour"] = "stop"
    distill_command.cmd_distill(_args(line + " --stop-after 3"))
    assert "stopped at step 3/15; continue with the same flags plus --resume" in capsys.readouterr().out


def test_an_interrupted_run_exits_with_the_shells_code(fake_distill, capsys, tmp_path):
    _, state = fake_distill
    state["behaviour"] = "sigterm"
    with pytest.raises(SystemExit) as e:
        distill_command.cmd_distill(_args(f"x distill --teacher two-moons --no-progress --out {tmp_path}"))
    assert e.value.code == 128 + 15
    assert "ddim-lesson: stopped after step 3 (SIGTERM)" in capsys.readouterr().err
