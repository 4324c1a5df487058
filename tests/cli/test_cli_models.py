"""What the command line says about a model: --model's help names every shipped model, a hint on stderr when a
model is under-trained for its data, and --upscale's range, each checked through ``ddim-lesson`` itself."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from ddim_lesson.cli import model_hints
from ddim_lesson.cli.main import build_parser, main
from ddim_lesson.store import pretrained as P
from ddim_lesson.train.loop import train
from ddim_lesson.train.train_config import TrainConfig


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def card(dataset: str, steps: int, init_from: str = "", **extra: object) -> dict:
    return {"dataset": dataset, "steps": steps, "train_config": {"steps": steps, "init_from": init_from}, **extra}


# -- --model's help -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["sample", "invert", "info"])
def test_model_help_names_every_shipped_model(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "2000")  # argparse wraps at hyphens otherwise
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    text = " ".join(sub.format_help().split())
    for name in P.PRETRAINED:
        assert name in text, (command, name)
    # read from the registry, not written out: a model added to it appears in the help
    monkeypatch.setitem(P.PRETRAINED, "fashion-mnist-new", "fashion-mnist-new")
    assert "fashion-mnist-new" in model_hints.model_help()


# -- the under-training hint -------------------------------------------------------------------------------
CARDS = {"two-moons": card("two-moons", 8000), "fashion-mnist": card("fashion-mnist", 6000),
         "fashion-mnist-cond": card("fashion-mnist", 3000, init_from="fashion-mnist"),
         "fashion-mnist-half-a": card("fashion-mnist", 6000)}


@pytest.mark.parametrize(("meta", "hinted"), [
    (card("two-moons", 200), True),  # the smoke test: 2.5 % of the recipe
    (card("two-moons", 1999), True),
    (card("two-moons", 2000), False),  # a quarter of 8000: no hint
    (card("fashion-mnist", 1000), True),
    (card("fashion-mnist", 1000, init_from="fashion-mnist"), False),  # 1000 + 6000 of the model it started from
    (card("fashion-mnist", 1500), False),  # a quarter of the from-scratch recipe (6000), not of cond's 3000 + 6000
    (card("fashion-mnist", 100, init_from="runs/x"), False),  # started from a path: its steps are unknown
    (card("cifar10", 10), False),  # no shipped model on cifar10: no recipe
    ({**card("fashion-mnist", 4), "sampling": {"steps": 4}}, False),  # a distilled student: steps are sampling's
    ({"dataset": "two-moons"}, False),  # no card of a training run
])  # fmt: skip
def test_the_hint_rule(meta: dict, hinted: bool) -> None:
    hint = model_hints.undertrained_hint(meta, "m", CARDS)
    assert (hint is not None) == hinted, hint
    if hinted:
        ref = 8000 if meta["dataset"] == "two-moons" else 6000
        assert hint.count("\n") == 0 and f"{meta['steps']} steps" in hint and f"of the {ref}" in hint
        assert f"{100 * meta['steps'] / ref:.1f} %" in hint


def test_the_rule_against_a_planted_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule is steps < 1/4 of the recipe's, not some other fraction: a planted 1/2 hints at 3000 of 8000."""
    assert model_hints.undertrained_hint(card("two-moons", 3000), "m", CARDS) is None
    monkeypatch.setattr(model_hints, "UNDERTRAINED_FRACTION", 0.5)
    assert model_hints.undertrained_hint(card("two-moons", 3000), "m", CARDS) is not None


def test_no_shipped_model_is_hinted_and_recipes_come_from_the_cards() -> None:
    cards = model_hints._cards()
    assert set(cards) == set(P.PRETRAINED)
    for name, meta in cards.items():
        assert model_hints.undertrained_hint(meta, name) is None, name
    tm = json.loads(P.weights_path("two-moons").with_suffix(".json").read_text())
    assert model_hints.recipe("two-moons") == ("two-moons", tm["steps"])


@pytest.fixture(scope="module")
def moons_200(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A two-moons run of 200 steps (a small MLP, under a second), the issue's example."""
    out = tmp_path_factory.mktemp("moons200")
    train(TrainConfig(dataset="two-moons", steps=200, batch_size=64, n_toy=500, mlp_hidden=32, mlp_depth=2,
                      device="cpu", progress=False, out=str(out)))
    return str(out)


def test_sample_says_the_hint_on_stderr(moons_200: str, tmp_path, capsys: pytest.CaptureFixture) -> None:
    rc, out, err = run(capsys, "sample", "--model", moons_200, "--n", "50", "--steps", "5", "--no-progress",
                       "--out", str(tmp_path / "m.png"))
    assert rc == 0 and "wrote a scatter plot" in out and "hint:" not in out
    hints = [line for line in err.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1 and "200 steps, 2.5 % of the 8000" in hints[0], err
    rc, _, err = run(capsys, "sample", "--model", "two-moons", "--n", "50", "--steps", "5", "--no-progress",
                     "--out", str(tmp_path / "s.png"))
    assert rc == 0 and "hint:" not in err  # the shipped model: no hint


# -- --upscale ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["sample", "invert"])
@pytest.mark.parametrize("bad", ["0", "17", "-2"])
def test_upscale_out_of_range_is_one_line(command: str, bad: str, tmp_path, capsys: pytest.CaptureFixture) -> None:
    rc, out, err = run(capsys, command, "--upscale", bad, "--out", str(tmp_path / "x.png"))
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert f"upscale must be an integer in [1, 16], got {bad}" in err, err
    assert not (tmp_path / "x.png").exists()


def test_upscale_sets_the_size_of_the_grid(tmp_path, capsys: pytest.CaptureFixture) -> None:
    sizes = {}
    for k in ("1", "5", None):
        png = tmp_path / f"g{k}.png"
        extra = ["--upscale", k] if k else []
        rc, out, _ = run(capsys, "sample", "--n", "4", "--steps", "1", "--no-progress", "--out", str(png), *extra)
        assert rc == 0
        sizes[k] = Image.open(png).size
        assert f"({sizes[k][0]}x{sizes[k][1]} px)" in out
    w1 = 2 * 30 + 2  # 4 images: 2 columns of 28 px, 2 px of padding around each
    assert sizes["1"] == (w1, w1) and sizes["5"] == (5 * w1, 5 * w1)
    assert sizes[None] == (math.ceil(512 / w1) * w1,) * 2  # by default at least 512 px wide
    a, b = np.asarray(Image.open(tmp_path / "g1.png")), np.asarray(Image.open(tmp_path / "g5.png"))
    assert np.array_equal(b, a.repeat(5, axis=0).repeat(5, axis=1))  # the same samples, each pixel 5 × 5


@pytest.mark.parametrize("command", ["sample", "invert"])
def test_a_velocity_model_is_refused_by_the_eps_samplers(command: str, tmp_path, capsys) -> None:
    """The flow-matching twin predicts v, not ε: DDIM would run it without error and draw noise."""
    from ddim_lesson.cli.main import main

    out = tmp_path / "x.png"
    assert main([command, "--model", "fashion-mnist-fm", "--steps", "2", "--n", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trained with objective 'flow'" in err and "flow_sample" in err and not out.exists()


def test_refuse_velocity_model_passes_eps_models_and_old_cards() -> None:
    from ddim_lesson.cli.model_hints import refuse_velocity_model

    refuse_velocity_model({"train_config": {"objective": "eps"}}, "m")
    refuse_velocity_model({"train_config": {}}, "m")  # cards written before the objective existed
    refuse_velocity_model({}, "m")
    with pytest.raises(ValueError, match="objective 'flow'"):
        refuse_velocity_model({"train_config": {"objective": "flow"}}, "m")


def test_a_distilled_student_sampled_off_its_grid_gets_a_hint_naming_the_flags(tmp_path, capsys) -> None:
    """`sample --model fashion-mnist-distilled` with the default 50 steps: one hint line naming --steps 4; with the
    card's own steps and grid, no hint. The samples are what the flags ask for either way."""
    card = {"sampling": {"steps": 4, "spacing": "trailing"}}
    assert model_hints.student_steps_hint(card, "s", 4, "trailing") is None
    assert model_hints.student_steps_hint({"steps": 4000}, "s", 50, "trailing") is None  # not a student
    line = model_hints.student_steps_hint(card, "s", 50, "trailing")
    assert line is not None and "--steps 4 --spacing trailing" in line and "50 trailing steps" in line
    assert "--steps 4" in model_hints.student_steps_hint(card, "s", 4, "leading")  # the grid counts too
    out = tmp_path / "g.png"
    assert main(["sample", "--model", "fashion-mnist-distilled", "--steps", "3", "--n", "2",
                 "--no-progress", "--out", str(out)]) in (0, None)
    err = capsys.readouterr().err
    assert err.count("hint: fashion-mnist-distilled is a distilled student") == 1 and "--steps 4" in err
    main(["sample", "--model", "fashion-mnist-distilled", "--steps", "4", "--n", "2",
          "--no-progress", "--out", str(out)])
    assert "distilled student" not in capsys.readouterr().err
