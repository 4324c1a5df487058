"""The thread choice is announced once per command, by one function (store.device.announce_threads), in one format
(``torch uses <reason>``), on one stream (stderr, so that stdout stays machine-readable): every front-end, the
``ddim-lesson`` subcommands, the benchmark scripts and the GPU run, goes through it. A planted second announcement,
or an announcement written by hand in another module, is caught. (The notebooks' check_environment is checked in
tests/course/test_env.py.)"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import ddim_lesson
import ddim_lesson.train.classifier_train as classifier_train
import ddim_lesson.train.distill as train_distill
from ddim_lesson.cli import commands, gallery_script, gpu_run, guidance_script, speed_script, table_commands
from ddim_lesson.cli.classifier_script import train_classifier_main
from ddim_lesson.cli.gallery_script import gallery_main
from ddim_lesson.cli.guidance_script import guidance_main
from ddim_lesson.cli.main import main
from ddim_lesson.store import device
from ddim_lesson.store.device import announce_threads

PKG = Path(ddim_lesson.__file__).resolve().parent
HOME = PKG / "store" / "device.py"  # the one module that words the announcement


def announcements(out: str, err: str) -> tuple[int, int]:
    """How many thread announcements (lines ``torch uses ...``) stdout and stderr hold."""
    return tuple(sum(ln.startswith("torch uses ") for ln in s.splitlines()) for s in (out, err))  # type: ignore


def stub_train(cfg):
    return SimpleNamespace(meta={"steps": cfg.steps, "params": 1, "wall_time_s": 0.0, "device": "cpu",
                                 "final_loss": 0.0})


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every command's work replaced by a stub that prints to stdout (no training, sampling or timing)."""
    monkeypatch.setenv(device.ENV_VAR, "1")  # no load measurement: the same choice every time
    monkeypatch.setattr(commands, "train", stub_train)
    monkeypatch.setattr(commands, "sample_in_batches", lambda *a, **k: torch.zeros(a[2], 2))
    monkeypatch.setattr(commands, "save_scatter", lambda *a, **k: None)
    monkeypatch.setattr(train_distill, "distill", lambda cfg: SimpleNamespace(meta={"steps": cfg.steps,
                                                                                    "wall_time_s": 0.0}))
    entry = table_commands.TABLES["table1"]
    monkeypatch.setitem(table_commands.TABLES, "table1", dataclasses.replace(
        entry, run=lambda cfg, progress=True: {}, markdown=lambda res: "| table |"))
    monkeypatch.setattr(speed_script, "run_speed", lambda cfg, log=print: (log("device: fake"), {})[1])
    monkeypatch.setattr(guidance_script, "run_guidance", lambda cfg, threads="": {})
    monkeypatch.setattr(guidance_script, "guidance_markdown", lambda res: "| guidance |")
    monkeypatch.setattr(gallery_script, "run_gallery", lambda *a: print("gallery"))
    monkeypatch.setattr(classifier_train, "train_classifier", lambda *a: {"params": 1, "test_accuracy": 0.5,
                                                                           "wall_time_s": 0.0})
    monkeypatch.setattr(gpu_run, "run_gpu", lambda cfg: {"elapsed_s": 0, "stages": {}})
    return tmp_path


def _commands(tmp: Path) -> dict[str, Callable[[], object]]:
    return {
        "train": lambda: main(["train", "--dataset", "two-moons", "--steps", "2", "--out", str(tmp / "train")]),
        "sample": lambda: main(["sample", "--model", "two-moons", "--steps", "2", "--n", "4",
                                "--out", str(tmp / "s.png")]),
        "eval": lambda: main(["eval", "table1", "--out", str(tmp / "t1")]),
        "eval --threads": lambda: main(["eval", "table1", "--threads", "1", "--out", str(tmp / "t1b")]),
        "distill": lambda: main(["distill", "--out", str(tmp / "d")]),
        "gpu-run": lambda: main(["gpu-run", "--out", str(tmp / "g")]),
        "speed.py": lambda: speed_script.speed_main(None, ["--rounds", "1"]),
        "guidance.py": lambda: guidance_main("doc", ["--out", str(tmp / "guid")]),
        "gallery.py": lambda: gallery_main("doc", ["--only", "01", "--out", str(tmp / "img")]),
        "train_classifier.py": lambda: train_classifier_main("doc", ["--out", str(tmp / "clf")]),
        "train_classifier.py --threads": lambda: train_classifier_main("doc", ["--threads", "1",
                                                                               "--out", str(tmp / "clf2")]),
    }


@pytest.mark.parametrize("name", list(_commands(Path())))
def test_each_command_announces_once_on_stderr(stubs: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    before = torch.get_num_threads()
    try:
        assert _commands(stubs)[name]() in (None, 0)
    finally:
        torch.set_num_threads(before)
    out, err = capsys.readouterr()
    assert announcements(out, err) == (0, 1), (name, out, err)
    line, = (ln for ln in err.splitlines() if ln.startswith("torch uses "))
    assert re.fullmatch(r"torch uses 1 thread\(s\): set by (DDIM_LESSON_THREADS|--threads)", line), line


def test_a_planted_second_announcement_is_caught(stubs: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check fails when a command announces twice (a stub that announces again), or on stdout."""
    again = lambda cfg, log=print: (announce_threads("1 thread(s): again"), {})[1]  # noqa: E731
    monkeypatch.setattr(speed_script, "run_speed", again)
    speed_script.speed_main(None, ["--rounds", "1"])
    assert announcements(*capsys.readouterr()) == (0, 2)
    monkeypatch.setattr(speed_script, "run_speed", lambda cfg, log=print: (log("torch uses 1 thread(s)"), {})[1])
    speed_script.speed_main(None, ["--rounds", "1"])
    assert announcements(*capsys.readouterr()) == (1, 1)


def worded_elsewhere(pkg: Path = PKG) -> list[str]:
    """Modules other than store/device.py whose code words an announcement (the text ``torch uses``)."""
    return sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                  if p.resolve() != HOME.resolve() and "torch uses" in p.read_text())


def test_only_store_device_words_the_announcement(tmp_path: Path) -> None:
    assert "torch uses" in HOME.read_text()
    assert not (bad := worded_elsewhere()), f"announce the threads with store.device.announce_threads: {bad}"
    planted = tmp_path / "ddim_lesson"
    (planted / "cli").mkdir(parents=True)
    (planted / "cli" / "x.py").write_text('print(f"torch uses {n} threads")\n')
    assert worded_elsewhere(planted) == ["cli/x.py"]
