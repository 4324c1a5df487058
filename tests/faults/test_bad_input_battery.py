"""The bad-input battery: inputs a learner (or an attacker) passes, each with a clear answer.

Every case must end one of two ways: a ``ValueError`` whose message names the value and what is
allowed (the CLI: exit 2 with exactly one line, no traceback), or a documented, tested acceptance
(numpy arrays, integer-like steps, another floating dtype). Nothing may reach torch's internals
and nothing may pass silently. A new entry point gets its rows added here.

Rows: x_T against the model; non-finite ε; integer-like counts; η; widgets; dataset files; CLI.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddim_lesson import (
    NoiseSchedule,
    cfg,
    ddim_invert,
    ddim_progressive,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddpm_sample,
    ode_sample,
    sdedit,
)
from ddim_lesson.cli.main import main
from ddim_lesson.core.checks import NonFiniteError, check_eps_finite, check_model_input
from ddim_lesson.core.schedules import ddim_timesteps, naive_timesteps
from ddim_lesson.course.widgets import interpolation_explorer, sample_run, sampler_explorer, seeded_latents
from ddim_lesson.course.widgets.forward import forward_explorer, forward_frame
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser, UNet, UNetConfig
from ddim_lesson.store.data import DataFileError, load_images

SCH = NoiseSchedule.linear(50)


@pytest.fixture(scope="module")
def unet() -> UNet:
    """A tiny 28×28×1 UNet with random weights: the shipped model's interface at a fraction of its cost."""
    torch.manual_seed(0)
    return UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2)).eval()


@pytest.fixture(scope="module")
def mlp() -> MLPDenoiser:
    torch.manual_seed(0)
    return MLPDenoiser(MLPConfig(hidden=16, depth=1)).eval()


# --------------------------------------------------------------------------------------
# x_T (or x0) that does not fit the model
# --------------------------------------------------------------------------------------
ENTRY_POINTS = {  # each takes (model, x) and samples or inverts with few steps
    "ddim_sample": lambda m, x: ddim_sample(m, SCH, x, steps=3),
    "ddim_progressive": lambda m, x: ddim_progressive(m, SCH, x, steps=3),
    "ddpm_sample": lambda m, x: ddpm_sample(m, SCH, x, steps=3, generator=torch.Generator().manual_seed(0)),
    "ddim_invert": lambda m, x: ddim_invert(m, SCH, x, steps=3),
    "ode_sample": lambda m, x: ode_sample(m, SCH, x, steps=3),
    "sdedit": lambda m, x: sdedit(m, SCH, x, strength=0.5, steps=3, generator=torch.Generator().manual_seed(0)),
}
BAD_IMAGES = {  # name: (x, the message it must give)
    "3 channels": (torch.randn(2, 3, 28, 28), r"must have shape \(B, 1, 28, 28\) for this model, got \(2, 3, 28, 28\)"),
    "27x27": (torch.randn(2, 1, 27, 27), r"must have shape \(B, 1, 28, 28\) for this model, got \(2, 1, 27, 27\)"),
    "32x32 (sampled silently before)": (torch.randn(2, 1, 32, 32), r"got \(2, 1, 32, 32\)"),
    "no batch dimension": (torch.randn(1, 28, 28), r"got \(1, 28, 28\); add a batch dimension with x\w*\[None\]"),
    "empty batch": (torch.randn(0, 1, 28, 28), r"batch size >= 1, got shape \(0, 1, 28, 28\)"),
    "python list": ([[0.0] * 28] * 28, r"must be a torch.Tensor \(or numpy array\) of shape \(B, 1, 28, 28\), "
                                       r"got list"),
    "int64 tensor": (torch.zeros(2, 1, 28, 28, dtype=torch.long), r"must be a floating tensor .*got dtype torch.int64"),
    "complex tensor": (torch.zeros(2, 1, 28, 28, dtype=torch.complex64), r"got dtype torch.complex64"),
    "a string": ("noise", r"got str"),
    "NaN": (torch.full((2, 1, 28, 28), math.nan), r"must be finite everywhere; it has 1568 NaN/inf entries"),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", BAD_IMAGES)
def test_x_that_does_not_fit_the_unet(unet, entry: str, case: str) -> None:
    x, message = BAD_IMAGES[case]
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](unet, x)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("x, message", [
    (torch.randn(4, 3), r"must have shape \(B, 2\) for this model, got \(4, 3\)"),
    (torch.randn(2), r"got \(2,\); add a batch dimension"),
    (torch.randn(4, 1, 28, 28), r"must have shape \(B, 2\) for this model, got \(4, 1, 28, 28\)"),
])
def test_x_that_does_not_fit_the_mlp(mlp, entry: str, x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](mlp, x)


@pytest.mark.parametrize("entry", ["ddim_sample", "ddpm_sample", "ddim_invert", "ode_sample", "sdedit"])
@pytest.mark.parametrize("convert", [
    pytest.param(lambda x: x.numpy().astype(np.float64), id="numpy float64"),
    pytest.param(lambda x: x.numpy(), id="numpy float32"),
    pytest.param(lambda x: x.double(), id="float64 tensor"),
    pytest.param(lambda x: x.half(), id="float16 tensor"),
])
def test_obviously_meant_inputs_are_accepted_and_cast(unet, entry: str, convert) -> None:
    """Documented in check_model_input: numpy arrays and other floating dtypes are cast to the weights' dtype."""
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    if convert(x).dtype in (torch.float16, np.float16):
        x = x.half().float()  # the same values the float16 input holds
    want = ENTRY_POINTS[entry](unet, x)
    got = ENTRY_POINTS[entry](unet, convert(x))
    assert got.dtype == torch.float32 and got.shape == (2, 1, 28, 28)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("case", ["3 channels", "32x32 (sampled silently before)", "no batch dimension", "NaN"])
def test_x_that_does_not_fit_a_guided_model(case: str) -> None:
    """cfg() wraps a class-conditional model; its config (and so the check) is the wrapped model's."""
    torch.manual_seed(0)
    cond = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2, num_classes=3)).eval()
    x, message = BAD_IMAGES[case]
    with pytest.raises(ValueError, match=message):
        ddim_sample(cfg(cond, 1, 2.0), SCH, x, steps=2)


def test_check_model_input_names_the_device(unet) -> None:
    meta_model = UNet(unet.config).to("meta")
    with pytest.raises(ValueError, match=r"x_T is on cpu but the model is on meta; move it with x_T.to\('meta'\)"):
        check_model_input(meta_model, torch.randn(1, 1, 28, 28))


def test_check_model_input_sees_through_wrappers(unet) -> None:
    wrapped = torch.nn.Sequential()  # no config of its own ...
    wrapped.module = unet  # ... but a DDP-style .module
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        check_model_input(wrapped, torch.randn(1, 3, 28, 28))


# --------------------------------------------------------------------------------------
# ε that stops being finite: an error naming the step t, never NaN samples
# --------------------------------------------------------------------------------------
def _bad_after(t_bad: int, value: float):
    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = 0.1 * x
        return torch.where(t.view(-1, *[1] * (x.ndim - 1)) <= t_bad, torch.full_like(x, value), eps)
    return model


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("clip_x0", [True, False])
def test_model_that_returns_non_finite_eps_names_the_step(value: float, clip_x0: bool) -> None:
    """inf with clip_x0 would be clamped to a finite, wrong sample: it must raise too."""
    ts = ddim_timesteps(SCH.T, 5).tolist()  # [49, 39, 29, 19, 9]
    first_bad = ts[2]
    x = torch.randn(3, 2)
    with pytest.raises(NonFiniteError, match=rf"eps stopped being finite at timestep t={first_bad} "):
        ddim_sample(_bad_after(first_bad, value), SCH, x, steps=5, clip_x0=clip_x0)
    with pytest.raises(ValueError, match=rf"t={first_bad} "):  # NonFiniteError is a ValueError ...
        ddpm_sample(_bad_after(first_bad, value), SCH, x, steps=5, clip_x0=clip_x0)
    with pytest.raises(FloatingPointError):  # ... and a FloatingPointError
        ddim_invert(_bad_after(SCH.T, value), SCH, x, steps=5)


@pytest.mark.parametrize("entry, first_t", [("ode_sample", 49), ("sdedit", 24), ("ddim_progressive", 49)])
def test_every_entry_point_names_the_step_of_a_nan_model(entry: str, first_t: int) -> None:
    def nan_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, math.nan)

    with pytest.raises(NonFiniteError, match=rf"eps stopped being finite at timestep t={first_t} "):
        out = ENTRY_POINTS[entry](nan_model, torch.zeros(2, 2))
        list(out) if entry == "ddim_progressive" else out


@pytest.mark.parametrize("which", ["unet", "mlp"])
def test_huge_x_T_raises_at_the_first_step(unet, mlp, which: str) -> None:
    model = unet if which == "unet" else mlp
    shape = (2, 1, 28, 28) if which == "unet" else (2, 2)
    with pytest.raises(NonFiniteError, match=r"t=49 "):
        ddim_sample(model, SCH, torch.full(shape, 1e38), steps=5, clip_x0=False)


def test_sample_that_overflows_in_an_update() -> None:
    """ε finite at every step (the model ignores x), but an update overflows float32 (no clip): raised, not returned."""
    with pytest.raises(NonFiniteError, match=r"the sample is not finite after the last step \(t=9\), although the "
                                             r"model's eps was finite at every step: an update overflowed"):
        ddim_sample(lambda x, t: torch.full_like(x, -3.4e38), SCH, torch.full((1, 2), 3e38), steps=5, clip_x0=False)
    out = ddim_sample(lambda x, t: torch.full_like(x, -3.4e38), SCH, torch.full((1, 2), 1e38), steps=5)
    assert out.abs().max() <= 1  # clip_x0 (the default) bounds it: no error, a finite sample
    # At x_T = 3e38 the ε that eq. 12 re-derives from the clipped x0_pred, (x_t - √ᾱ_t)/√(1 - ᾱ_t) ≈ 3e38/0.6,
    # is itself past float32's 3.4e38: the paper's form (ddim_step, which the loop runs) names the overflow.
    with pytest.raises(NonFiniteError, match=r"not finite after the last step \(t=9\)"):
        ddim_sample(lambda x, t: torch.full_like(x, -3.4e38), SCH, torch.full((1, 2), 3e38), steps=5)


def test_check_eps_finite_is_exact_when_the_sum_overflows() -> None:
    check_eps_finite(torch.full((4,), 3e38), t=7)  # the sum is inf, every entry finite: no error
    with pytest.raises(NonFiniteError, match=r"t=7 \(1 of 4 entries NaN/inf\)"):
        check_eps_finite(torch.tensor([0.0, 1.0, math.nan, 2.0]), t=7)


# --------------------------------------------------------------------------------------
# Counts: any integer (numpy, 0-d tensor) is accepted; floats and bools are refused
# --------------------------------------------------------------------------------------
INT_LIKE = [np.int64(4), np.int32(4), torch.tensor(4), np.uint8(4)]
NOT_INT = [4.0, np.float64(4), torch.tensor(4.0), True, "4", None, torch.tensor([4])]


@pytest.mark.parametrize("steps", INT_LIKE, ids=repr)
def test_integer_like_steps_are_accepted(steps) -> None:
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(0))
    model = lambda x, t: 0.1 * x  # noqa: E731
    want = ddim_sample(model, SCH, x, steps=4)
    assert torch.equal(ddim_sample(model, SCH, x, steps=steps), want)
    g = torch.Generator
    assert torch.equal(ddpm_sample(model, SCH, x, steps=steps, generator=g().manual_seed(0)),
                       ddpm_sample(model, SCH, x, steps=4, generator=g().manual_seed(0)))
    assert torch.equal(ddim_invert(model, SCH, x, steps=steps), ddim_invert(model, SCH, x, steps=4))
    assert torch.equal(ddim_timesteps(SCH.T, steps), ddim_timesteps(50, 4))
    assert torch.equal(naive_timesteps(SCH.T, steps), naive_timesteps(50, 4))
    assert NoiseSchedule.linear(np.int64(50)).params["T"] == 50 and type(NoiseSchedule.linear(np.int64(50)).T) is int


@pytest.mark.parametrize("steps", NOT_INT, ids=repr)
def test_non_integer_steps_are_refused(steps) -> None:
    got = re.escape(repr(steps))
    for call in (lambda: ddim_sample(lambda x, t: x, SCH, torch.zeros(1, 2), steps=steps),
                 lambda: ddim_timesteps(SCH.T, steps)):
        with pytest.raises(ValueError, match=rf"steps must be an integer in \[1, 50\], got (the bool )?{got}"):
            call()


# --------------------------------------------------------------------------------------
# η outside [0, 1] is refused everywhere, never clamped
# --------------------------------------------------------------------------------------
ETA_ENTRY = {
    "ddim_step": lambda e: ddim_step(torch.zeros(1, 2), torch.zeros(1, 2), 0.5, 0.7, eta=e, noise=torch.zeros(1, 2)),
    "ddim_sample": lambda e: ddim_sample(lambda x, t: x, SCH, torch.zeros(1, 2), steps=3, eta=e),
    "ddim_sigma": lambda e: ddim_sigma(0.5, 0.7, e),
}


@pytest.mark.parametrize("entry", ETA_ENTRY)
@pytest.mark.parametrize("eta", [1.5, 1 + 1e-9, 2, -1e-9, math.nan, math.inf, "0.5", None, 1j], ids=repr)
def test_eta_outside_0_1_is_refused(entry: str, eta) -> None:
    with pytest.raises(ValueError, match=rf"eta must be a finite number in \[0.0, 1.0\], got {re.escape(repr(eta))}"):
        ETA_ENTRY[entry](eta)


@pytest.mark.parametrize("eta", [np.float64(0.5), torch.tensor(0.5), 1, 0])
def test_eta_real_numbers_of_any_type_are_accepted(eta) -> None:
    assert ddim_sigma(0.5, 0.7, eta) == ddim_sigma(0.5, 0.7, float(eta))


# --------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------
WIDGET_CASES = {  # name: (call(unet, mlp), message)
    "explorer on the 2-D MLP": (lambda u, m: sampler_explorer(m, SCH),
                                r"the sampler explorer needs an image model, samples of shape \(C, H, W\) .*\(2,\)"),
    "explorer shape (3, 28, 28) on a 1-channel model": (
        lambda u, m: sampler_explorer(u, SCH, shape=(3, 28, 28)),
        r"needs an image model of shape \(3, 28, 28\), but this model takes \(1, 28, 28\)"),
    "explorer shape (1, 32, 32)": (lambda u, m: sampler_explorer(u, SCH, shape=(1, 32, 32)), r"takes \(1, 28, 28\)"),
    "explorer shape not a tuple": (lambda u, m: sampler_explorer(u, SCH, shape=28), r"shape must be a tuple"),
    "explorer eta as a string": (lambda u, m: sampler_explorer(u, SCH, eta="0.5"), r"eta must be .* got '0.5'"),
    "explorer eta 1.5": (lambda u, m: sampler_explorer(u, SCH, eta=1.5), r"\[0.0, 1.0\], got 1.5"),
    "explorer steps 2.0": (lambda u, m: sampler_explorer(u, SCH, steps=2.0), r"steps must be an integer .* got 2.0"),
    "explorer seed -1": (lambda u, m: sampler_explorer(u, SCH, seed=-1), r"seed must be an integer in \[0, 99\]"),
    "explorer n 0": (lambda u, m: sampler_explorer(u, SCH, n=0), r"n must be an integer in \[1, 64\], got 0"),
    "explorer spacing": (lambda u, m: sampler_explorer(u, SCH, spacing="uniform"), r"unknown spacing 'uniform'"),
    "sample_run seed 2**64": (lambda u, m: sample_run(u, SCH, 2, 0.0, 2**64),
                              r"seed must be an integer in \[0, 9223372036854775807\]"),
    "latents n 1.5": (lambda u, m: seeded_latents(0, 1.5, (2,)), r"n must be an integer >= 1, got 1.5"),
    "interpolation on the 2-D MLP": (lambda u, m: interpolation_explorer(m, SCH),
                                     r"the interpolation explorer needs an image model"),
    "interpolation z0 a list": (lambda u, m: interpolation_explorer(u, SCH, z0=[0.0], z1=[1.0]),
                                r"z0 must be a torch.Tensor latent"),
    "interpolation z0 NaN": (lambda u, m: interpolation_explorer(u, SCH, z0=torch.full((1, 28, 28), math.nan),
                                                                 z1=torch.zeros(1, 28, 28)), r"z0 must be finite"),
    "interpolation z0 of another shape": (lambda u, m: interpolation_explorer(u, SCH, z0=torch.zeros(3, 28, 28),
                                                                              z1=torch.zeros(3, 28, 28)),
                                          r"this model takes \(1, 28, 28\)"),
    "interpolation alpha '0.5'": (lambda u, m: interpolation_explorer(u, SCH, alpha="0.5"), r"alpha must be .*'0.5'"),
    "forward explorer NaN images": (lambda u, m: forward_explorer(torch.full((2, 1, 4, 4), math.nan)),
                                    r"images must be finite; 32 entries are NaN/inf"),
    "forward explorer images in [0, 255]": (lambda u, m: forward_explorer(torch.full((2, 1, 4, 4), 255.0)),
                                            r"images must be in \[-1, 1\], got values in \[255, 255\]"),
    "forward explorer uint8 images": (lambda u, m: forward_explorer(torch.zeros(2, 1, 4, 4, dtype=torch.uint8)),
                                      r"floating tensor .* got dtype torch.uint8"),
    "forward explorer a list": (lambda u, m: forward_explorer([[0.0]]), r"got list"),
    "forward explorer 2 channels": (lambda u, m: forward_explorer(torch.zeros(2, 2, 4, 4)), r"C = 1 or 3"),
    "forward explorer t 1.5": (lambda u, m: forward_explorer(torch.zeros(1, 1, 4, 4), t=1.5), r"t must be an integer"),
    "forward explorer schedules not schedules": (lambda u, m: forward_explorer(torch.zeros(1, 1, 4, 4), {"a": 3}),
                                                 r"schedules must map names to NoiseSchedule"),
    "forward frame t 50": (lambda u, m: forward_frame(torch.zeros(1, 1, 4, 4), SCH, 50, torch.zeros(1, 1, 4, 4)),
                           r"t must be an integer in \[0, 49\], got 50"),
}


@pytest.mark.parametrize("case", WIDGET_CASES)
def test_widget_inputs(unet, mlp, case: str) -> None:
    call, message = WIDGET_CASES[case]
    with pytest.raises(ValueError, match=message):
        call(unet, mlp)


def test_widgets_accept_integer_likes(unet) -> None:
    ex = sampler_explorer(unet, SCH, n=np.int64(2), steps=np.int64(2), seed=torch.tensor(3), max_steps=np.int32(5))
    assert ex.last is not None and ex.last.steps == 2 and ex.last.seed == 3 and ex.steps.max == 5
    fx = forward_explorer(np.zeros((1, 1, 4, 4), dtype=np.float32), t=np.int64(5))  # numpy images, documented
    assert fx.t.value == 5


# --------------------------------------------------------------------------------------
# Dataset files: damaged ones are named, with the fix
# --------------------------------------------------------------------------------------
def _idx(dims: tuple[int, ...], fill: int = 0) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + bytes([fill]) * math.prod(dims)


def _fake_fashion(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx((n, 28, 28), 128)))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx((n,), 1)))
    return folder


DAMAGE = {  # name: (how to damage t10k-images in the source folder, message)
    "truncated .gz": (lambda p: p.write_bytes(p.read_bytes()[:40]), r"cannot gunzip it"),
    "not gzip at all": (lambda p: p.write_bytes(b"<html>not found</html>"), r"cannot gunzip it: Not a gzipped file"),
    "gzip of garbage": (lambda p: p.write_bytes(gzip.compress(b"garbage" * 10)), r"not an IDX file"),
    "gzip of a short IDX": (lambda p: p.write_bytes(gzip.compress(_idx((3, 28, 28))[:-10])),
                            r"2358 bytes where its header promises 2368: truncated"),
    "empty file": (lambda p: p.write_bytes(gzip.compress(b"")), r"not an IDX file: it starts with bytes none"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_dataset_file_is_named(tmp_path, monkeypatch, case: str) -> None:
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    src = _fake_fashion(tmp_path / "src")
    damage, message = DAMAGE[case]
    damage(src / "t10k-images-idx3-ubyte.gz")
    name = re.escape(str(src / "t10k-images-idx3-ubyte.gz"))
    with pytest.raises(DataFileError, match=rf"the dataset file {name} is damaged \({message}.*replace it"):
        load_images(root=src, train=False)
    assert not list((tmp_path / "cache").rglob("t10k-images-idx3-ubyte"))  # no damaged copy is kept


def test_damaged_unpacked_file_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in (("train-images-idx3-ubyte", _idx((2, 28, 28))), ("train-labels-idx1-ubyte", _idx((2,))),
                       ("t10k-images-idx3-ubyte", _idx((2, 28, 28))[:100]), ("t10k-labels-idx1-ubyte", _idx((2,)))):
        (raw / name).write_bytes(data)
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte is damaged \(100 bytes where its header"):
        load_images(root=tmp_path / "root", train=False)


def test_a_whole_small_dataset_still_loads(tmp_path, monkeypatch) -> None:
    """The control: the same fake files, undamaged, load (so the checks above can fail)."""
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    x, y = load_images(root=_fake_fashion(tmp_path / "src"), train=False, with_labels=True)
    assert x.shape == (3, 1, 28, 28) and torch.allclose(x, torch.full_like(x, 128 / 127.5 - 1), atol=1e-6)
    assert y.tolist() == [1] * 3


# --------------------------------------------------------------------------------------
# The CLI: one line, exit 2, no traceback
# --------------------------------------------------------------------------------------
def _one_line(capsys, argv: list[str]) -> str:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2 and out == "", (rc, out, err)
    assert err.count("\n") == 1 and err.startswith("ddim-lesson: error: ") and "Traceback" not in err, err
    return err


BIG = str(2**64)
CLI_CASES = {  # argv: the message
    "sample --seed 2**64": (["sample", "--seed", BIG], r"seed must be an integer in \[0, 9223372036854775807\]"),
    "sample --seed -1": (["sample", "--seed", "-1"], r"seed must be an integer in \[0, "),
    "sample --eta 1.5": (["sample", "--eta", "1.5"], r"eta must be a finite number in \[0.0, 1.0\], got 1.5"),
    "sample --eta inf": (["sample", "--eta", "inf"], r"got inf"),
    "invert --seed 2**64": (["invert", "--seed", BIG], r"seed must be an integer"),
    "train --seed 2**64": (["train", "--seed", BIG, "--out", "x"], r"seed must be an integer"),
    "eval --device cuda:7": (["eval", "table1", "--device", "cuda:7", "--n", "2"], r"device 'cuda:7'"),
    "eval --device tpu": (["eval", "table2", "--device", "tpu", "--n", "2"], r"unknown device 'tpu'"),
    "eval --seed 2**64": (["eval", "table1", "--seed", BIG, "--n", "2"], r"seed must be an integer"),
    "eval --etas 0,1.5": (["eval", "table1", "--etas", "0,1.5", "--n", "2"], r"eta must be .*got 1.5"),
    "eval spread --seeds 0,-1": (["eval", "spread", "--seeds", "0,-1", "--n", "2"], r"each of --seeds must be"),
    "sample --steps 0": (["sample", "--model", "two-moons", "--steps", "0", "--out", "x.png"],
                         r"steps must be an integer in \[1, 1000\], got 0"),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_values(capsys, tmp_path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    argv, message = CLI_CASES[case]
    assert re.search(message, _one_line(capsys, argv))


@pytest.fixture()
def crafted(tmp_path: Path) -> Path:
    """The shipped two-moons model with hostile metadata: escape sequences and malformed optional fields."""
    from ddim_lesson.store.pretrained import weights_path

    src = weights_path("two-moons")
    meta = json.loads(src.with_suffix(".json").read_text())
    meta |= {"command": "train \x1b]0;PWNED\x07\x1b[2J\x1b[31mred\x9b", "final_loss": "abc", "metrics": [1, 2],
             "wall_time_s": "soon", "loss_history": ["a", None], "world_size": {"x": 1}, "dataset": "two\rmoons\x00"}
    (tmp_path / "crafted.json").write_text(json.dumps(meta))
    shutil.copy(src.with_suffix(".safetensors"), tmp_path / "crafted.safetensors")
    return tmp_path / "crafted.json"


def test_info_strips_control_characters_and_survives_malformed_fields(capsys, crafted: Path) -> None:
    rc = main(["info", str(crafted)])
    out, err = capsys.readouterr()
    if rc == 2:  # a loader that refuses such metadata outright is fine too, in one line
        assert err.count("\n") == 1 and "Traceback" not in err
        return
    assert rc == 0, err
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), repr(out)
    assert "command:     train ]0;PWNED[2J[31mred" in out
    assert "metrics:     final_loss=? (malformed)" in out and "loss:        ? (malformed: 2 points)" in out
    assert "wall time:   ?" in out and "dataset:     two moons" in out


def test_info_json_escapes_control_characters(capsys, crafted: Path) -> None:
    rc = main(["info", str(crafted), "--json"])
    out = capsys.readouterr().out
    if rc == 0:
        assert "\x1b" not in out and "\\u001b]0;PWNED" in out


@pytest.mark.parametrize("exc, message", [
    (MemoryError(), r"out of memory \(MemoryError\); ask for less"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8e9 bytes"),
     r"out of memory \(RuntimeError: DefaultCPUAllocator"),
    (RecursionError("maximum recursion depth exceeded"), r"the input is nested too deeply to read"),
    (OSError("[Errno 28] No space left on device"), r"No space left on device"),
    (ValueError("a\x1b[2Jb\x07"), r"error: a\[2Jb\n"),  # control characters (ESC, BEL) dropped from any message
])
def test_cli_turns_resource_errors_into_one_line(capsys, monkeypatch, exc: BaseException, message: str) -> None:
    import ddim_lesson.cli.commands as cli  # the subcommands look the loader up there

    def boom(*_a, **_k):
        raise exc

    monkeypatch.setattr(cli, "load_any", boom)
    assert re.search(message, _one_line(capsys, ["info", "two-moons"]))


def test_cli_keeps_the_traceback_of_a_bug(monkeypatch) -> None:
    """Only user errors become one line: a bug (here a plain RuntimeError) still shows where it happened."""
    import ddim_lesson.cli.commands as cli  # the subcommands look the loader up there

    monkeypatch.setattr(cli, "load_any", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info", "two-moons"])


@pytest.mark.slow  # a fresh interpreter imports torch: a few seconds
def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    """`ddim-lesson info ... --json | head -1`: the reader goes away; no traceback, no 'Exception ignored'; one
    line says why it stopped, and the status is the shell's for SIGPIPE (141), not a user error's 2."""
    err_file = tmp_path / "err"
    with open(err_file, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "ddim_lesson", "info", "two-moons", "--json"],
                             stdout=subprocess.PIPE, stderr=err)
        p.stdout.close()  # the reader is gone before the first write
        rc = p.wait(timeout=120)
    text = err_file.read_text()
    assert rc == 141 and "Traceback" not in text and "Exception ignored" not in text, (rc, text)
    assert text.strip() == "ddim-lesson: stopped: the reader of its output went away (broken pipe)", text


def test_data_errors_reach_the_cli_as_one_line(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    src = _fake_fashion(tmp_path / "src")
    DAMAGE["truncated .gz"][0](src / "t10k-images-idx3-ubyte.gz")
    monkeypatch.setenv("DDIM_LESSON_DATA", str(src))
    err = _one_line(capsys, ["invert", "--n", "1", "--steps", "2", "--out", str(tmp_path / "i.png")])
    assert "t10k-images-idx3-ubyte.gz is damaged (cannot gunzip it" in err


def test_cuda_index_is_bounded_by_the_gpus_present(monkeypatch) -> None:
    """cuda:7 on a machine with one GPU would fail deep inside torch at the first allocation."""
    from ddim_lesson.cli.errors import check_cuda_index

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_cuda_index(torch.device("cuda", 0), "cuda:0") == torch.device("cuda", 0)
    assert check_cuda_index(torch.device("cpu"), "cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device 'cuda:7': this machine has 1 CUDA device\(s\); allowed: auto, cpu, "
                                         r"cuda:0$"):
        check_cuda_index(torch.device("cuda", 7), "cuda:7")
