"""One help string per flag (issue 20): every flag of every ``ddim-lesson`` subcommand and benchmarks/*.py script,
grouped by its name, has one help text, written once in ``core.fields`` (or its config's module), unless its
meaning differs by command (the allow-list, each with its reason); and a bad seed, lr or label gets the same
message, naming the value and the range, from every command that takes it."""

from __future__ import annotations

import argparse
import importlib
import re
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
import torch

from ddim_lesson.cli import main as cli_main
from ddim_lesson.cli import speed_script
from ddim_lesson.cli.classifier_script import TrainClassifierArgs
from ddim_lesson.cli.commands import InvertArgs, SampleArgs
from ddim_lesson.cli.flags import add_dataclass_args, script_parser
from ddim_lesson.core import fields, guidance
from ddim_lesson.core.checks import SEED_MAX, check_label
from ddim_lesson.evaluate.fid_spread import SpreadConfig
from ddim_lesson.evaluate.guidance_tables import GuidanceConfig
from ddim_lesson.evaluate.solver_fid import SolverFIDConfig
from ddim_lesson.evaluate.table1 import Table1Config
from ddim_lesson.nets.models import UNet, UNetConfig
from ddim_lesson.store.data import class_label
from ddim_lesson.train.distill_config import DistillConfig
from ddim_lesson.train.train_config import TrainConfig

# dest -> (how many help texts it may have, why its meaning differs by command)
ALLOWED = {
    "steps": (3, "training steps (train), DDIM steps S of one sampler, and a table's columns: a list of S"),
    "n": (4, "samples drawn (sample), samples per FID (the FID tables), test images inverted: a seeded random "
             "subset (invert) or the first n (table2)"),
    "batch_size": (2, "training examples per optimizer step against samples per model call (memory only)"),
    "out": (8, "a PNG (sample; invert's has three labelled rows), a results prefix (the tables), a run folder "
               "(train, distill, gpu-run), the classifier's files, the gallery's folder: different things written"),
    "model": (4, "a table that compares models says which one --model is (the ε-model beside --twin, the teacher "
                 "beside --students, a class-conditional one for guidance)"),
    "device": (2, "the table scripts pass --device to the model as written, so they take no 'auto'"),
    "spacing": (2, "distill takes 'trailing' only: the one spacing whose k-step grid nests in its 2k-step grid"),
    "compile": (2, "train compiles its model; speed.py also times torch.compile"),
    "json": (2, "info prints JSON (a switch); speed.py writes a JSON file (a path)"),
    "block_s": (2, "gpu-run's smoke-sized block against speed.py's benchmark block"),
}
TABLE_SCRIPTS = ("table1", "table2", "fid_spread", "solver_fid", "spacing_fid", "flow_twin_fid", "distill_fid")
SCRIPTS = {"gallery": ("gallery_script", "gallery_main"), "guidance": ("guidance_script", "guidance_main"),
           "threads": ("threads_script", "threads_main"),
           "train_classifier": ("classifier_script", "train_classifier_main")}
SUFFIX = re.compile(r"(; allowed: [^()]*)?\s*(\(default: .*\))?$")


def _walk(p: argparse.ArgumentParser, path: str, out: list[tuple[str, str, str]]) -> None:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                _walk(sp, f"{path} {name}", out)
        elif a.option_strings and not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS:
            out.append((path, a.dest, SUFFIX.sub("", a.help or "")))


def script_parsers(monkeypatch: pytest.MonkeyPatch) -> dict[str, argparse.ArgumentParser]:
    """The parser of every benchmarks/*.py script, built by the script's own main (its run replaced by nothing)."""
    got: dict[str, argparse.ArgumentParser] = {}
    for name, (mod, fn) in {**SCRIPTS, **{t: ("table_commands", "script_main") for t in TABLE_SCRIPTS}}.items():
        m = importlib.import_module(f"ddim_lesson.cli.{mod}")
        box: list[argparse.ArgumentParser] = []
        monkeypatch.setattr(m, "script_parser", lambda doc, _box=box: _box.append(script_parser(doc)) or _box[-1])
        monkeypatch.setattr(m, "run_one_line", lambda prog, command: None)
        args = ("x", {"fid_spread": "spread"}.get(name, name), []) if fn == "script_main" else ("x", [])
        getattr(m, fn)(*args)
        got[f"benchmarks/{name}.py"] = box[0]
    got["benchmarks/speed.py"] = speed_script.build_parser("x")
    return got


def all_flags(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """(command, dest, help without its default and allowed values) of every flag of every command."""
    out: list[tuple[str, str, str]] = []
    _walk(cli_main.build_parser(), "ddim-lesson", out)
    for name, p in script_parsers(monkeypatch).items():
        _walk(p, name, out)
    return out


def helps_by_dest(flags: list[tuple[str, str, str]]) -> dict[str, dict[str, list[str]]]:
    by: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for command, dest, help_ in flags:
        by[dest][help_].append(command)
    return by


def too_many_helps(flags: list[tuple[str, str, str]]) -> dict[str, dict[str, list[str]]]:
    """The flags with more help texts than allowed (one, or ALLOWED's count)."""
    return {d: dict(h) for d, h in helps_by_dest(flags).items() if len(h) > ALLOWED.get(d, (1, ""))[0]}


def test_every_flag_has_one_help(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = all_flags(monkeypatch)
    commands = {c for c, _, _ in flags}
    assert len(commands) >= 20 and {"ddim-lesson sample", "ddim-lesson eval table1", "benchmarks/speed.py"} <= commands
    assert too_many_helps(flags) == {}
    by = helps_by_dest(flags)
    for dest in ("seed", "seeds", "progress", "threads", "lr", "warmup", "ema_decay", "clip_x0", "nfes", "eta"):
        assert len(by[dest]) == 1 and len(next(iter(by[dest].values()))) >= 2, dest  # shared, and one text
    assert all(h for d, hs in by.items() for h in hs if d in ("seed", "seeds", "progress", "lr")), "help left empty"


def test_allow_list_is_needed_and_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each allowed flag does have several helps (else its entry is stale) and says why."""
    by = helps_by_dest(all_flags(monkeypatch))
    for dest, (count, reason) in ALLOWED.items():
        assert 2 <= len(by[dest]) <= count and len(reason) > 20, dest


def test_a_planted_duplicate_help_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that declares --seed (or --lr) again with its own words is caught by the same check."""

    @dataclass
    class Planted:
        seed: int = field(default=0, metadata={"help": "seed of the planted command"})
        lr: float = fields.lr_field(1e-3)

    p = argparse.ArgumentParser()
    add_dataclass_args(p, Planted)
    flags = all_flags(monkeypatch)
    planted: list[tuple[str, str, str]] = []
    _walk(p, "planted", planted)
    bad = too_many_helps(flags + planted)
    assert set(bad) == {"seed"} and bad["seed"]["seed of the planted command"] == ["planted"]


BAD_SEED = f"seed must be an integer in [0, {SEED_MAX}], got -1"
BAD_LR = "lr must be a finite number in (0, 1), got 2.0"


@pytest.mark.parametrize("make", [lambda: SampleArgs(seed=-1), lambda: InvertArgs(seed=-1),
                                  lambda: Table1Config(seed=-1), lambda: TrainConfig(seed=-1),
                                  lambda: DistillConfig(seed=-1), lambda: TrainClassifierArgs(seed=-1)])
def test_a_bad_seed_gets_one_message(make) -> None:
    with pytest.raises(ValueError) as e:
        make()
    assert str(e.value) == BAD_SEED


@pytest.mark.parametrize("make", [lambda: SpreadConfig(seeds=(0, -1)), lambda: SolverFIDConfig(seeds=(0, -1)),
                                  lambda: GuidanceConfig(seeds=(0, -1))])
def test_a_bad_seed_in_a_list_gets_one_message(make) -> None:
    with pytest.raises(ValueError) as e:
        make()
    assert str(e.value) == "each of --seeds must be an integer in [0, 9223372036854775807], got -1"


@pytest.mark.parametrize("argv", [["sample", "--seed", "-1"], ["invert", "--seed", "-1"],
                                  ["eval", "table1", "--seed", "-1"], ["train", "--seed", "-1", "--out", "x"]])
def test_a_bad_seed_on_the_command_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(argv) == 2
    assert capsys.readouterr().err == f"ddim-lesson: error: {BAD_SEED}\n"


@pytest.mark.parametrize("make", [lambda: TrainConfig(lr=2.0), lambda: DistillConfig(lr=2.0),
                                  lambda: TrainClassifierArgs(lr=2.0)])
def test_a_bad_lr_gets_one_message(make) -> None:
    with pytest.raises(ValueError) as e:
        make()
    assert str(e.value) == BAD_LR


def test_a_bad_lr_on_two_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["train", "--lr", "2", "--out", "x"], ["distill", "--lr", "2", "--out", "x"]):
        assert cli_main.main(argv) == 2
        assert capsys.readouterr().err == f"ddim-lesson: error: {BAD_LR}\n", argv


def test_a_bad_label_gets_one_message() -> None:
    """The label of the command line (a number or a class name) and the label of the maths say the same range."""
    with pytest.raises(ValueError) as core_err:
        check_label(11, 10)
    assert str(core_err.value) == "label must be an integer in [0, 10] (10: no label), got 11"
    with pytest.raises(ValueError) as cli_err:
        class_label("fashion-mnist", "11", 10)
    assert str(cli_err.value).startswith("label must be an integer in [0, 10] (10: no label)")
    with pytest.raises(ValueError) as cfg_err:  # the maths' label: cfg, the model's forward
        guidance.cfg(lambda x, t, y: x, 11, 2.0, num_classes=10)
    assert str(cfg_err.value) == str(core_err.value)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1,), num_classes=10))
    with pytest.raises(ValueError) as net_err:
        net(torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long), torch.tensor([11]))
    assert str(net_err.value) == str(core_err.value)
    for bad in (-1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"label must be an integer in \[0, 4\] \(4: no label\)"):
            check_label(bad, 4)
    assert check_label(4, 4) == 4 and check_label(0, 4) == 0  # "no label" and the first class are labels


def test_each_field_checks_once_at_the_entry() -> None:
    """A field made in core.fields is checked by the config's __post_init__, through check_fields, by its own check."""

    @dataclass
    class Conf:
        seed: int = fields.seed_field()
        lr: float = fields.lr_field(1e-3)
        seeds: tuple[int, ...] = fields.seeds_field((0, 1))

        def __post_init__(self) -> None:
            fields.check_fields(self)

    import numpy as np

    assert Conf(seeds=(np.int64(3),)).seeds == (3,) and type(Conf(seeds=(np.int64(3),)).seeds[0]) is int
    with pytest.raises(ValueError, match=re.escape(BAD_SEED)):
        Conf(seed=-1)
    with pytest.raises(ValueError, match=re.escape(BAD_LR)):
        Conf(lr=2.0)
    assert Conf(lr=1e-3, seed=SEED_MAX).seed == SEED_MAX


def test_the_command_line_checks_a_seed_once_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """``sample --seed`` is checked once before the model is loaded (by SampleArgs' field), not again by the shared
    flags; a planted second check (the old check_common_args) is counted."""
    import ddim_lesson.cli.commands as commands
    import ddim_lesson.cli.errors as errors
    import ddim_lesson.core.checks as checks

    seen: list[int] = []
    real_int = checks.check_int

    def counting(name, value, *a, **kw):
        if name == "seed":
            seen.append(value)
        return real_int(name, value, *a, **kw)

    def load(*a, **kw):
        raise RuntimeError(f"loaded after {len(seen)} seed checks")

    monkeypatch.setattr(checks, "check_int", counting)
    monkeypatch.setattr(commands, "load_any", load)
    argv = ["sample", "--model", "two-moons", "--seed", "7", "--out", str(tmp_path / "s.png"), "--no-progress"]
    with pytest.raises(RuntimeError, match="loaded after 1 seed checks"):
        cli_main.main(argv)
    real_common = errors.check_common_args

    def planted(args, pick=None):  # the old second rule: the shared flags checked the seed again
        real_common(args, pick)
        checks.check_seed(args.seed)

    monkeypatch.setattr(cli_main, "check_common_args", planted)
    seen.clear()
    with pytest.raises(RuntimeError, match="loaded after 2 seed checks"):
        cli_main.main(argv)
