"""The ``ddim-lesson`` command: help with examples, one-line errors, sample/invert/info/export."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ddim_lesson.cli import commands
from ddim_lesson.cli.main import main
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.evaluate.generate import sample_in_batches
from ddim_lesson.nets.models import UNet, UNetConfig, count_params
from ddim_lesson.store.checkpoints import load_model
from ddim_lesson.store.pretrained import pretrained
from ddim_lesson.train.loop import train
from ddim_lesson.train.train_config import TrainConfig

SUBCOMMANDS = ("train", "sample", "invert", "info", "export")
TINY_UNET = dict(base_channels=8, channel_mults=(1, 2))


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def grid_size(n, nrow, side=28, pad=2, upscale=None):
    """torchvision's make_grid: nrow columns, ceil(n/nrow) rows, ``pad`` pixels around every cell; then each pixel
    drawn k × k, k by default the smallest whole factor that makes the grid at least 512 px wide (at most 16)."""
    rows = math.ceil(n / nrow)
    w, h = nrow * (side + pad) + pad, rows * (side + pad) + pad
    k = upscale or min(16, math.ceil(512 / w))
    return w * k, h * k


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny UNet trained for 3 steps on 64 random 28×28 images: a real run folder."""
    out = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.setattr("ddim_lesson.train.loop.load_dataset", lambda *a, **k: torch.rand(64, 1, 28, 28) * 2 - 1)
    try:
        train(TrainConfig(dataset="fashion-mnist", steps=3, batch_size=4, device="cpu", progress=False,
                          out=str(out), **TINY_UNET))
    finally:
        mp.undo()
    return out


def test_help_shows_examples(capsys):
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "examples:" in out
    for name in SUBCOMMANDS:
        assert f"ddim-lesson {name}" in out
        rc, out_sub, _ = run(capsys, name, "--help")
        assert rc == 0 and "example:" in out_sub and f"ddim-lesson {name} " in out_sub.split("example:")[1]


@pytest.mark.slow  # a fresh interpreter imports torch: several seconds on 2 cores
def test_python_dash_m_runs_the_same_command():
    res = subprocess.run([sys.executable, "-m", "ddim_lesson", "sample", "--n", "0"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr == "ddim-lesson: error: n must be an integer in [1, 10000], got 0\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "--model", "two-moons", "--steps", "0"], "steps must be an integer in [1, 1000], got 0"),
        (["sample", "--model", "two-moons", "--steps", "1001"], "steps must be an integer in [1, 1000], got 1001"),
        (["sample", "--eta", "-0.5"], "eta must be a finite number in [0.0, 1.0], got -0.5"),
        (["sample", "--eta", "nan"], "eta must be a finite number in [0.0, 1.0], got nan"),
        (["sample", "--spacing", "even"], "invalid choice: 'even' (choose from 'leading', 'trailing'"),
        (["sample", "--n", "0"], "n must be an integer in [1, 10000], got 0"),
        (["sample", "--batch-size", "-3"], "batch_size must be an integer in [1, 10000], got -3"),
        (["sample", "--out", "grid.jpg"], "out must be a .png file name, got 'grid.jpg'"),
        (["sample", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
        (["sample", "--model", "two-moons", "--device", "tpu"], "unknown device 'tpu'; allowed: auto, cpu"),
        (["sample", "--model", "no/such/model"], "'no/such/model' is neither a shipped model (fashion-mnist, two"),
        (["sample", "--colour"], "unrecognized arguments: --colour"),
        (["invert", "--n", "0"], "n must be an integer in [1, 10000], got 0"),
        (["invert", "--model", "two-moons"], "invert needs an image model"),
        (["train", "--steps", "0", "--out", "x"], "steps must be an integer >= 1, got 0"),
        (["train", "--lr", "3", "--out", "x"], "lr must be a finite number in (0, 1), got 3.0"),
        (["train", "--dataset", "two-moons"], "--out is required"),
        (["info", "/no/such/file"], "neither a shipped model"),
        (["export", "only-one-arg"], "the following arguments are required: out"),
        ([], "the following arguments are required"),
        (["dance"], "invalid choice: 'dance'"),
    ],
)
def test_bad_values_exit_2_with_one_line(capsys, argv, message):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ddim-lesson: error: "), err
    assert message in err


def test_a_corrupt_checkpoint_is_one_line_too(tmp_path, capsys):
    (tmp_path / "m.safetensors").write_bytes(b"\x00" * 10)
    (tmp_path / "m.json").write_text("{not json")
    rc, _, err = run(capsys, "info", str(tmp_path / "m"))
    assert rc == 2 and err.count("\n") == 1 and "is not valid JSON" in err and "Traceback" not in err


def test_sample_from_a_trained_checkpoint_writes_a_png_of_the_right_size(tiny_run, tmp_path, capsys):
    png = tmp_path / "grid.png"
    rc, out, _ = run(capsys, "sample", "--model", str(tiny_run), "--n", "6", "--batch-size", "4", "--steps", "2",
                     "--out", str(png), "--device", "cpu", "--no-progress")
    assert rc == 0 and "wrote 6 samples" in out
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == grid_size(6, nrow=3)  # ceil(sqrt(6)) = 3 columns, 2 rows


def test_sample_is_reproducible_and_eta_matters(tiny_run, tmp_path, capsys):
    args = ["sample", "--model", str(tiny_run / "model"), "--n", "2", "--steps", "3", "--no-progress"]
    for name, extra in (("a", []), ("b", []), ("c", ["--eta", "1"])):
        assert run(capsys, *args, "--out", str(tmp_path / f"{name}.png"), *extra)[0] == 0
    pixels = {k: torch.from_numpy(np.array(Image.open(tmp_path / f"{k}.png"))) for k in "abc"}
    assert torch.equal(pixels["a"], pixels["b"]) and not torch.equal(pixels["a"], pixels["c"])


def test_sampling_calls_the_model_one_batch_at_a_time(monkeypatch, tiny_run, tmp_path, capsys):
    """Peak memory is bounded by --batch-size: the model never sees more samples at once."""
    seen = []
    real_load = commands.load_any

    class Recorder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, x, t):
            seen.append(x.shape[0])
            return self.inner(x, t)

    def load_recorded(spec, device="cpu"):
        model, schedule, meta, where = real_load(spec, device)
        return Recorder(model), schedule, meta, where

    monkeypatch.setattr(commands, "load_any", load_recorded)
    rc, _, _ = run(capsys, "sample", "--model", str(tiny_run), "--n", "10", "--batch-size", "4", "--steps", "3",
                   "--out", str(tmp_path / "g.png"), "--no-progress")
    assert rc == 0
    assert seen == [4] * 3 + [4] * 3 + [2] * 3  # 3 batches × 3 steps; every call at most 4 samples
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == grid_size(10, nrow=4)


def test_n_10000_never_holds_more_than_one_batch_of_model_activations(monkeypatch, tmp_path, capsys):
    """`sample --n 10000`: when the model is called, no tensor it saw or made for an earlier batch is alive.

    Every input and output of the model is tracked with a weak reference; a loop that kept them
    (a list of batches on the device, a history of x_t) would leave earlier batches alive.
    """
    import weakref

    real_load, calls, alive = commands.load_any, [0], {}  # alive: id -> batch index of a live tensor
    steps, batch = 3, 500

    class Census(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config
            self.earlier_alive: list[int] = []  # per call: how many live tensors from earlier batches

        def forward(self, x, t):
            k = calls[0] // steps
            calls[0] += 1
            self.earlier_alive.append(sum(b < k for b in alive.values()))
            eps = self.inner(x, t)
            for tensor in (x, eps):
                if id(tensor) not in alive:
                    alive[id(tensor)] = k
                    weakref.finalize(tensor, alive.pop, id(tensor), None)
            return eps

    census = []

    def load_census(spec, device="cpu"):
        model, schedule, meta, where = real_load(spec, device)
        census.append(Census(model))
        return census[-1], schedule, meta, where

    monkeypatch.setattr(commands, "load_any", load_census)
    rc, out, _ = run(capsys, "sample", "--model", "two-moons", "--n", "10000", "--batch-size", str(batch),
                     "--steps", str(steps), "--out", str(tmp_path / "g.png"), "--no-progress")
    assert rc == 0 and "of 10000 2-D samples" in out
    assert calls[0] == 10000 // batch * steps
    assert census[0].earlier_alive == [0] * calls[0]


def test_sample_progress_bar_counts_model_calls(tmp_path, capsys):
    args = ["sample", "--model", "two-moons", "--n", "30", "--batch-size", "10", "--steps", "4"]
    rc, _, err = run(capsys, *args, "--out", str(tmp_path / "a.png"))
    assert rc == 0 and "sample" in err and "12/12" in err and "batch=3/3" in err
    rc, _, err = run(capsys, *args, "--out", str(tmp_path / "b.png"), "--no-progress")
    assert rc == 0 and err == ""


def test_sample_a_toy_model_writes_a_scatter_plot(tmp_path, capsys):
    png = tmp_path / "moons.png"
    rc, out, _ = run(capsys, "sample", "--model", "two-moons", "--n", "300", "--steps", "10", "--out", str(png),
                     "--no-progress")
    assert rc == 0 and "scatter plot of 300 2-D samples" in out
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (500, 500)


def test_invert_writes_three_rows_and_reports_the_error(monkeypatch, tiny_run, tmp_path, capsys):
    images = torch.rand(20, 1, 28, 28) * 2 - 1
    monkeypatch.setattr(commands, "load_images", lambda name, train=True, **k: images)  # the name invert uses
    png = tmp_path / "inv.png"
    rc, out, _ = run(capsys, "invert", "--model", str(tiny_run), "--n", "3", "--steps", "2", "--out", str(png),
                     "--no-progress")
    assert rc == 0 and "inverted 3 fashion-mnist test images with 2 DDIM steps" in out
    mse = float(out.split("MSE ")[1].split()[0])
    assert 0 <= mse < 4 and math.isfinite(mse)
    with Image.open(png) as im:
        w, h = grid_size(9, nrow=3)  # rows: inputs, latents, reconstructions (96 px wide: drawn 6 × 6)
        assert im.size[1] == h and im.size[0] > w  # a label column on the left
        column = np.asarray(im.convert("L"))[:, : im.size[0] - w]
        for r in range(3):  # white label text in each row's band
            assert (column[r * h // 3 + 12 : (r + 1) * h // 3 - 12] > 128).any(), r


def test_info_prints_what_a_model_holds(capsys):
    rc, out, _ = run(capsys, "info", "two-moons")
    assert rc == 0
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    for key in ("type", "params", "config", "schedule", "dataset", "steps", "device", "wall time", "command",
                "metrics", "loss"):
        assert key in fields, key
    model, _ = pretrained("two-moons")
    assert fields["type"] == "mlp" and fields["params"] == f"{count_params(model):,}"
    assert fields["dataset"] == "two-moons" and fields["schedule"].startswith("linear T=1000")
    assert fields["command"].startswith("ddim-lesson train --dataset two-moons")
    assert fields["kind"].startswith("model (EMA weights")
    rc, out, _ = run(capsys, "info", "two-moons", "--json")
    assert rc == 0 and json.loads(out)["model"]["type"] == "mlp"


def test_info_and_export_of_a_training_checkpoint(tiny_run, tmp_path, capsys):
    rc, out, _ = run(capsys, "info", str(tiny_run / "checkpoint"))
    assert rc == 0 and "training checkpoint" in out and "steps:       3" in out
    rc, out, _ = run(capsys, "export", str(tiny_run), str(tmp_path / "shipped"))
    assert rc == 0 and "wrote the EMA weights" in out
    exported, _, meta = load_model(tmp_path / "shipped")
    ema, _, _ = load_model(tiny_run / "model")  # train() wrote the same EMA weights as model.*
    assert all(torch.equal(a, b) for a, b in zip(exported.state_dict().values(), ema.state_dict().values()))
    assert "losses" not in meta and len(meta["loss_history"]) == 1


def test_sample_in_batches_does_not_clip_2d_points():
    """2-D data reach ±2.2, so x0 is not clipped to [-1, 1] for toy models (it is for images)."""
    model = UNet(UNetConfig(**TINY_UNET))  # the zero-initialised head predicts ε = 0
    x = sample_in_batches(model, NoiseSchedule.linear(), 2, 2, steps=1, seed=0)
    assert x.abs().max() <= 1.0
    moons, schedule = pretrained("two-moons")
    pts = sample_in_batches(moons, schedule, 500, 500, steps=20, seed=0)
    assert pts.abs().max() > 1.5


def test_eval_is_wired_and_rejects_an_unknown_table(capsys):
    assert main(["eval", "table9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "table1" in err and "table2" in err


def test_eval_table2_runs_end_to_end_on_the_cli(tmp_path, capsys):
    """A tiny Table 2 through the CLI on the shipped model: more steps reconstruct real images better."""
    from ddim_lesson.store.data import DEBIAN_DIR

    if not DEBIAN_DIR.exists():
        pytest.skip("needs the Fashion-MNIST test set (apt-get install dataset-fashion-mnist)")
    out = tmp_path / "t2"
    assert main(["eval", "table2", "--n", "2", "--steps", "2,10", "--out", str(out)]) == 0
    cells = json.loads(out.with_suffix(".json").read_text())["cells"]
    assert cells["S=10"]["mse"] < cells["S=2"]["mse"]
    assert cells["S=2"]["mse_unit_range"] == pytest.approx(cells["S=2"]["mse"] / 4)
    assert "S=10" in out.with_suffix(".md").read_text() or "10" in out.with_suffix(".md").read_text()


def _grid_cells(png, n, nrow, side=28, pad=2):
    """The n images of a make_grid PNG, back in [-1, 1]: (n, 1, side, side)."""
    a = torch.from_numpy(np.array(Image.open(png).convert("L"))).float() / 127.5 - 1
    cells = [a[pad + r * (side + pad):][:side, pad + c * (side + pad):][:, :side]
             for r in range(math.ceil(n / nrow)) for c in range(nrow)][:n]
    return torch.stack(cells)[:, None]


def test_sample_with_a_label_draws_that_class(tmp_path, capsys):
    """--label steers fashion-mnist-cond (through cfg): the course classifier finds the class in most samples,
    against about 1 in 10 from the same latents without a label; a name and its number give the same grid."""
    from ddim_lesson.evaluate.guidance_eval import classify

    args = ["sample", "--model", "fashion-mnist-cond", "--n", "9", "--steps", "10", "--no-progress", "--device", "cpu",
            "--upscale", "1"]  # the grid's own pixels, read back by _grid_cells
    outs = {}
    for name, extra in (("dress", ["--label", "dress", "--scale", "3"]), ("three", ["--label", "3", "--scale", "3"]),
                        ("plain", [])):
        rc, outs[name], _ = run(capsys, *args, "--out", str(tmp_path / f"{name}.png"), *extra)
        assert rc == 0, outs[name]
    assert "(class 3 (Dress) at guidance scale 3, 10 DDIM steps" in outs["dress"] and "class" not in outs["plain"]
    assert np.array_equal(np.array(Image.open(tmp_path / "dress.png")), np.array(Image.open(tmp_path / "three.png")))
    on_class = {k: int((classify(_grid_cells(tmp_path / f"{k}.png", 9, 3))[1].argmax(1) == 3).sum())
                for k in ("dress", "plain")}
    assert on_class["dress"] >= 7 and on_class["plain"] <= 4, on_class


def test_sample_label_summary_and_default_scale(tmp_path, capsys):
    rc, out, _ = run(capsys, "sample", "--model", "fashion-mnist-cond", "--label", "Ankle_Boot", "--n", "1",
                     "--steps", "1", "--no-progress", "--device", "cpu", "--out", str(tmp_path / "a.png"))
    assert rc == 0 and "class 9 (Ankle boot) at guidance scale 2, 1 DDIM steps" in out, out


@pytest.mark.parametrize("argv,msg", [
    (["--label", "3"], "--label needs a class-conditional model such as fashion-mnist-cond; 'fashion-mnist' has no"),
    (["--model", "fashion-mnist-cond", "--label", "11"], "label must be an integer in [0, 10] (10: no label) or a "
                                                         "class name (T-shirt/top, Trouser,"),
    (["--model", "fashion-mnist-cond", "--label", "frock"], "got 'frock'"),
    (["--model", "fashion-mnist-cond", "--label", "-1"], "got '-1'"),
    (["--model", "fashion-mnist-cond", "--scale", "2"], "scale 2 needs a class to guide towards: pass --label too"),
    (["--model", "fashion-mnist-cond", "--label", "3", "--scale", "nan"], "scale must be a finite number, got nan"),
])  # fmt: skip
def test_sample_label_and_scale_errors_are_one_line(argv, msg, tmp_path, capsys):
    rc, _, err = run(capsys, "sample", *argv, "--n", "1", "--steps", "1", "--out", str(tmp_path / "x.png"))
    assert rc == 2 and err.count("\n") == 1 and msg in err, err
    assert not (tmp_path / "x.png").exists()


def test_sample_help_shows_what_no_label_and_the_default_scale_mean(capsys):
    rc, out, _ = run(capsys, "sample", "--help")
    text = " ".join(out.split())
    assert rc == 0 and "--scale (default: none)" in text and "(default: 2 with --label)" in text, text
    assert "(default: auto)" not in text.split("--label LABEL with")[1]  # None is no label here, not "picked for you"
