"""The second red team's faults in the maths and the class-conditional set-up (items 5, 10, 11, 13, 14): each
bad value is a ValueError naming it and what is allowed, before any work; each check can fail (the red team's
reproduction passed before the fix)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ddim_lesson import NoiseSchedule, cfg, ddim_invert, ddim_sample, lerp, q_sample, slerp
from ddim_lesson.nets.models import UNet, UNetConfig
from ddim_lesson.store.checkpoints import CheckpointError, load_model
from ddim_lesson.store.pretrained import WEIGHTS_DIR
from ddim_lesson.train.train_config import TrainConfig


# -- item 5: num_classes against the dataset's classes, label_dropout only with it ----------------
@pytest.mark.parametrize("k", [3, 9, 11])
def test_num_classes_must_match_the_dataset(k: int) -> None:
    with pytest.raises(ValueError, match=rf"num_classes must be 0 or 10 \(the classes of fashion-mnist\), got {k}"):
        TrainConfig(dataset="fashion-mnist", num_classes=k)
    assert TrainConfig(dataset="fashion-mnist", num_classes=10).num_classes == 10


def test_label_dropout_without_num_classes_is_refused() -> None:
    with pytest.raises(ValueError, match="label_dropout 0.3 is for class-conditional training; pass num_classes 10"):
        TrainConfig(dataset="fashion-mnist", label_dropout=0.3)
    with pytest.raises(ValueError, match="label_dropout 0.5 is for class-conditional"):
        TrainConfig(dataset="two-moons", label_dropout=0.5)
    assert TrainConfig(dataset="fashion-mnist", num_classes=10, label_dropout=0.3).label_dropout == 0.3


def test_train_cli_names_the_flag_before_any_work(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from ddim_lesson.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "fashion-mnist", "--num-classes", "9", "--out", str(out)]) == 2
    assert "num_classes must be 0 or 10" in capsys.readouterr().err and not out.exists()


# -- item 10: the schedule's T against train_config.T -----------------------------------------------
def test_a_schedule_edited_to_another_T_is_refused(tmp_path: Path) -> None:
    for ext in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"two-moons{ext}", tmp_path / f"m{ext}")
    load_model(tmp_path / "m")  # as shipped: loads
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["schedule"]["T"] = 10
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"schedule has T = 10 but the model was trained with T = 1000"):
        load_model(tmp_path / "m")


# -- item 11: cfg against the model ----------------------------------------------------------------
def _cond(k: int = 10) -> UNet:
    return UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_classes=k)).eval()


def test_cfg_refuses_a_num_classes_that_contradicts_the_model() -> None:
    with pytest.raises(ValueError, match=r"num_classes=5 contradicts the model, trained with num_classes=10"):
        cfg(_cond(), 1, 2.0, num_classes=5)
    assert cfg(_cond(), 1, 2.0, num_classes=10).num_classes == 10


def test_cfg_says_an_unconditional_model_is_not_class_conditional() -> None:
    with pytest.raises(ValueError, match="this model is not class-conditional"):
        cfg(_cond(0), 0, 1.0)


def test_cfg_refuses_an_empty_label_tensor() -> None:
    with pytest.raises(ValueError, match=r"shape \(B,\) with B >= 1, got torch.int64 of shape \(0,\)"):
        cfg(_cond(), torch.zeros(0, dtype=torch.long), 1.0)


# -- item 13: fixed-point inversion: a bound on k, the shape checked on every call ---------------------
def test_fixed_point_iters_has_an_upper_bound() -> None:
    calls = []
    with pytest.raises(ValueError, match=r"fixed_point_iters must be an integer in \[0, 100\], got 1000000000"):
        ddim_invert(lambda x, t: calls.append(1) or torch.zeros_like(x), NoiseSchedule.linear(100), torch.zeros(1, 2),
                    steps=2, fixed_point_iters=10**9)
    assert calls == []  # refused before any model call


def test_fixed_point_iterations_check_the_output_shape() -> None:
    """The first call of a step returns the right shape, the re-predictions a wrong one: caught at once."""
    n = [0]

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n[0] += 1
        return torch.zeros_like(x) if n[0] == 1 else torch.zeros(x.shape[0], 3)

    with pytest.raises(ValueError, match=r"model output shape \(1, 3\) must equal x0 shape \(1, 2\)"):
        ddim_invert(model, NoiseSchedule.linear(100), torch.zeros(1, 2), steps=2, fixed_point_iters=2)
    assert n[0] == 2


# -- item 14: lerp, slerp, q_sample ------------------------------------------------------------------
def test_lerp_does_not_broadcast() -> None:
    with pytest.raises(ValueError, match=r"z0 shape \(3, 2\) must equal z1 shape \(2,\)"):
        lerp(torch.zeros(3, 2), torch.ones(2), 0.5)


def test_slerp_of_opposite_latents_is_refused() -> None:
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="opposite directions"):
        slerp(z, -z, 0.5)
    mid = slerp(z, torch.randn(2, 8, generator=torch.Generator().manual_seed(1)), 0.5)
    assert bool((mid.norm(dim=1) > 0.1).all())  # a usual pair still interpolates


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_nan_latents_are_refused(fn) -> None:
    z = torch.zeros(2, 4)
    z[0, 1] = float("nan")
    with pytest.raises(ValueError, match="z0 holds NaN or inf"):
        fn(z, torch.ones(2, 4), 0.5)


def test_q_sample_refuses_nan_and_complex() -> None:
    s = NoiseSchedule.linear(100)
    t = torch.tensor([5, 9])
    x = torch.zeros(2, 3)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="x0 holds NaN or inf"):
        q_sample(x, t, s)
    with pytest.raises(ValueError, match="x0 must be a real floating tensor, got torch.complex64"):
        q_sample(torch.zeros(2, 3, dtype=torch.complex64), t, s)
    with pytest.raises(ValueError, match="noise holds NaN or inf"):
        q_sample(torch.zeros(2, 3), t, s, noise=torch.full((2, 3), float("inf")))
    out = q_sample(torch.ones(2, 3), t, s, noise=torch.zeros(2, 3))  # the closed form still holds
    assert torch.allclose(out, s.alphas_cumprod[t].sqrt().view(2, 1).float().expand(2, 3))


# -- item 1: a cosine-schedule model sampled garbage with exit 0 ------------------------------------------
def test_a_cosine_schedule_is_sampled_from_where_sigma_bar_is_at_most_157() -> None:
    from ddim_lesson.core.schedules import SIGMA_BAR_START, ddim_timesteps

    lin, cos = NoiseSchedule.linear(1000), NoiseSchedule.cosine(1000)
    sigma_bar = ((1 - cos.alphas_cumprod) / cos.alphas_cumprod).sqrt()  # (T,)
    assert float(sigma_bar[-1]) > 2e4 and lin.sampling_T == 1000  # the capped last β; linear: unchanged
    top = cos.sampling_T - 1
    assert float(sigma_bar[top]) <= SIGMA_BAR_START < float(sigma_bar[top + 1]) and top == 994
    for spacing in ("trailing", "linspace", "logsnr"):
        assert int(ddim_timesteps(1000, 10, spacing, schedule=cos)[0]) == top
    assert int(ddim_timesteps(1000, 10)[0]) == 999  # without a schedule: the spacing's own start


def test_a_cosine_schedule_does_not_multiply_eps_errors_by_2e4() -> None:
    """An exact ε (Gaussian data of sd 0.5) plus an error δ = 0.01, as any trained net has: DDIM's sample moves
    by 9.6δ from the default start (t = 994; the linear schedule: 3.4δ), by 1256δ from t = 999 (as measured)."""
    cos, c, delta = NoiseSchedule.cosine(1000), 0.5, 1e-2

    def exact(x: torch.Tensor, t: torch.Tensor, err: float = 0.0) -> torch.Tensor:
        ab = cos.alphas_cumprod[t].to(x.dtype).view(-1, 1)
        return (1 - ab).sqrt() * x / (ab * c**2 + 1 - ab) + err

    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    from_999 = NoiseSchedule(cos.betas.clone(), "custom")  # the same ᾱ, sampled from T - 1 (the planted bug)
    moved = []
    for sch in (cos, from_999):
        ref = ddim_sample(exact, sch, x_T, steps=11, clip_x0=False)
        moved.append(float((ddim_sample(lambda x, t: exact(x, t, delta), sch, x_T, steps=11, clip_x0=False)
                            - ref).abs().max()) / delta)
    assert moved[0] < 12 and moved[1] > 100, moved


@pytest.mark.slow  # trains a small two-moons model (about 3 s)
def test_a_cosine_model_samples_its_data(tmp_path: Path) -> None:
    """The red team's reproduction, smaller: `train --schedule cosine`, then sample with the defaults."""
    from ddim_lesson.cli.main import main
    from ddim_lesson.store.data import toy_2d

    run = tmp_path / "c"
    assert main(["train", "--dataset", "two-moons", "--schedule", "cosine", "--steps", "600", "--batch-size", "256",
                 "--mlp-hidden", "64", "--n-toy", "4000", "--device", "cpu", "--no-progress", "--out", str(run)]) == 0
    assert main(["sample", "--model", str(run / "model"), "--out", str(tmp_path / "c.png"), "--no-progress"]) == 0
    model, schedule, _ = load_model(run / "model")
    x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    want = toy_2d("two-moons", 4000, torch.Generator().manual_seed(0)).std(0)  # (1.2, 0.7)
    got = ddim_sample(model, schedule, x_T, steps=50, clip_x0=False).std(0)  # measured (2.0, 0.8)
    planted = ddim_sample(model, NoiseSchedule(schedule.betas.clone(), "custom"), x_T, steps=50, clip_x0=False)
    assert bool((got < 2 * want).all()) and bool((planted.std(0) > 50 * want).all()), (got, planted.std(0))


def test_train_cli_refuses_label_dropout_without_num_classes_even_at_its_default(
        capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from ddim_lesson.cli.main import main

    out = tmp_path / "run"
    for value in ("0.1", "0.3"):
        assert main(["train", "--dataset", "fashion-mnist", "--label-dropout", value, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"label_dropout {value} is for class-conditional training; pass --num-classes" in err
        assert not out.exists()
