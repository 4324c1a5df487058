"""store.pretrained: notebook 11's shipped student ``fashion-mnist-distilled`` (ddim-lesson distill, 64 -> 4 steps).

Its card must say how to sample it; loading it must give the ε-model that v-prediction defines (checked here against
the raw network and ε = σ_t z_t + α_t v written out); DDIM with the card's steps makes exactly that many calls.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import ddim_lesson as dl
from ddim_lesson.core.distill import EpsFromV
from ddim_lesson.core.samplers import ddim_sample
from ddim_lesson.nets.models import UNet, UNetConfig
from ddim_lesson.store.pretrained import PRETRAINED, WEIGHTS_DIR, pretrained, pretrained_meta, weights_path

NAME = "fashion-mnist-distilled"


def test_the_student_ships_with_a_card_that_says_how_to_sample_it() -> None:
    assert NAME in PRETRAINED
    meta = pretrained_meta(NAME)
    teacher = pretrained_meta("fashion-mnist")
    assert meta["prediction"] == "v" and meta["sampling"] == {"steps": 4, "spacing": "trailing"}
    assert [r["steps"] for r in meta["rounds"]] == [32, 16, 8, 4]
    assert [r["teacher_steps"] for r in meta["rounds"]] == [64, 32, 16, 8]
    cfg = meta["distill_config"]
    assert (cfg["teacher"], cfg["start_steps"], cfg["final_steps"]) == ("fashion-mnist", 64, 4)
    assert meta["steps"] == 4 * cfg["steps_per_round"] == sum(r["train_steps"] for r in meta["rounds"])
    assert all(r["final_loss"] < r["first_loss"] for r in meta["rounds"])
    assert meta["model"] == teacher["model"] and meta["schedule"] == teacher["schedule"]  # the teacher's UNet
    assert meta["wall_time_s"] > 0 and meta["command"].startswith("ddim-lesson distill")
    card = (WEIGHTS_DIR / "README.md").read_text()
    assert meta["command"] in card.replace(" \\\n    ", " "), "the model card must give the exact command"
    assert any(line.startswith("## ") and NAME in line for line in card.splitlines())
    assert weights_path(NAME).with_suffix(".safetensors").stat().st_size < 4_000_000


def test_loading_gives_eps_from_v_written_out() -> None:
    student, schedule = pretrained(NAME)
    assert isinstance(student, EpsFromV)
    meta = json.loads(weights_path(NAME).with_suffix(".json").read_text())
    raw = UNet(UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["model"]["config"].items()}))
    raw.load_state_dict(load_file(str(weights_path(NAME).with_suffix(".safetensors"))))
    raw.eval()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 1, 28, 28, generator=g, dtype=torch.float32)
    t = torch.tensor([999, 500, 20])
    abar = schedule.alphas_cumprod[t].tolist()
    with torch.no_grad():
        v = raw(z, t)
        want = torch.stack([math.sqrt(1 - a) * z[i] + math.sqrt(a) * v[i] for i, a in enumerate(abar)])  # ε = σz + αv
        got = student(z, t)
        wrong = torch.stack([math.sqrt(a) * z[i] + math.sqrt(1 - a) * v[i] for i, a in enumerate(abar)])  # α, σ swapped
    assert torch.allclose(got, want, atol=1e-5)
    assert (got - wrong).abs().max() > 0.1


def test_four_ddim_steps_make_four_calls_and_stay_in_range() -> None:
    student, schedule = pretrained(NAME)
    calls = []

    def counted(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(int(t[0]))
        return student(x, t)

    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x0 = ddim_sample(counted, schedule, x_T, steps=4, clip_x0=False)
    assert calls == dl.ddim_timesteps(schedule.T, 4, "trailing", schedule=schedule).tolist() == [999, 749, 499, 249]
    assert torch.isfinite(x0).all() and x0.abs().max() < 3  # images in [-1, 1], with a little overshoot at most
    with pytest.raises(ValueError):
        pretrained(NAME + "-x")
