"""Training: the loss falls, a resumed run ends where an uninterrupted one does, NaN stops the run
without a checkpoint for the broken step, and the loss history is kept."""

import json
import math

import pytest
import torch

from ddim_lesson.store.checkpoints import load_checkpoint
from ddim_lesson.store.data import DEBIAN_DIR, IDX_FILES
from ddim_lesson.store.device import pick_device
from ddim_lesson.train import loop as train_mod
from ddim_lesson.train.loop import ema_update, train
from ddim_lesson.train.train_config import TrainConfig, batch_indices, lr_at

HAVE_DEBIAN = all((DEBIAN_DIR / (f + ".gz")).exists() for f in IDX_FILES)


def toy_config(**kw):
    """A tiny 2-D run: an MLP of width 32 on two moons, on the CPU."""
    base = dict(dataset="two-moons", steps=40, batch_size=64, lr=3e-3, warmup=10, mlp_hidden=32, mlp_depth=2,
                n_toy=2000, device="cpu", progress=False, ckpt_every=1000, ema_decay=0.9)
    return TrainConfig(**{**base, **kw})


def window_means(losses, k):
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


def test_two_moons_loss_falls():
    res = train(toy_config(steps=200, batch_size=128))
    first, last = window_means(res.losses, 20)
    assert len(res.losses) == 200 and all(math.isfinite(v) for v in res.losses)
    assert last < 0.6 * first, (first, last)  # measured: 0.66 -> 0.28
    assert not res.ema.training and res.meta["steps"] == 200 and res.meta["device"] == "cpu"


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DEBIAN, reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR})")
def test_small_unet_on_fashion_mnist_loss_falls():
    cfg = TrainConfig(dataset="fashion-mnist", n_images=512, steps=100, batch_size=16, lr=3e-3, warmup=10,
                      base_channels=8, channel_mults=(1, 2), device="cpu", progress=False)
    res = train(cfg)
    first, last = window_means(res.losses, 15)
    assert first > 0.5 and last < 0.5 * first, (first, last)  # measured: 0.80 -> 0.11 (zero head: loss 1 at step 0)
    assert res.meta["params"] < 100_000


def test_resume_ends_where_the_uninterrupted_run_ends(tmp_path):
    full = train(toy_config(out=str(tmp_path / "full")))
    part = train(toy_config(out=str(tmp_path / "part"), stop_after=17))
    assert len(part.losses) == 17 and not (tmp_path / "part" / "model.json").exists()
    assert json.loads((tmp_path / "part" / "checkpoint.json").read_text())["steps"] == 17
    resumed = train(toy_config(out=str(tmp_path / "part"), resume=True))
    assert resumed.meta["steps"] == 40 and len(resumed.losses) == 40
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full.losses), atol=1e-7, rtol=0)
    for a, b in [(resumed.ema, full.ema), (resumed.model, full.model)]:
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0, msg=name)
    # and the resumed run differs from one that merely restarts: it really continued
    restarted = train(toy_config(out=str(tmp_path / "restart"), steps=23))
    assert restarted.losses != full.losses[17:]


def test_nan_loss_stops_without_a_checkpoint_for_the_broken_step(tmp_path, monkeypatch):
    calls = []
    real = train_mod.diffusion_loss

    def poisoned(model, x0, schedule, g):
        calls.append(1)
        loss = real(model, x0, schedule, g)
        return loss * float("nan") if len(calls) == 6 else loss  # step 5 goes bad

    monkeypatch.setattr(train_mod, "diffusion_loss", poisoned)
    with pytest.raises(FloatingPointError, match="loss became nan at step 5; no checkpoint was written for it"):
        train(toy_config(out=str(tmp_path), ckpt_every=1))
    _, meta = load_checkpoint(tmp_path / "checkpoint")
    assert meta["steps"] == 5 and len(meta["losses"]) == 5 and all(math.isfinite(v) for v in meta["losses"])
    assert not (tmp_path / "model.json").exists()


def test_infinite_gradient_also_stops_the_run(tmp_path, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    calls = []

    def exploding(params, max_norm):
        calls.append(1)
        norm = real(params, max_norm)
        return norm * float("inf") if len(calls) == 3 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", exploding)
    with pytest.raises(FloatingPointError, match="gradient norm became inf at step 2"):
        train(toy_config(out=str(tmp_path), ckpt_every=1))
    assert load_checkpoint(tmp_path / "checkpoint")[1]["steps"] == 2


def test_progress_bar_only_when_asked(capsys):
    train(toy_config(steps=3, progress=False))
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    train(toy_config(steps=3, progress=True))
    assert "train two-moons" in capsys.readouterr().err


def test_loss_history_is_kept_with_the_checkpoint(tmp_path):
    res = train(toy_config(steps=60, out=str(tmp_path)))
    _, ckpt = load_checkpoint(tmp_path / "checkpoint")
    assert ckpt["losses"] == res.losses and len(res.losses) == 60
    _, model_meta = load_checkpoint(tmp_path / "model")
    expected = [round(sum(res.losses[i : i + 25]) / len(res.losses[i : i + 25]), 5) for i in (0, 25, 50)]
    assert model_meta["loss_history"] == expected
    assert model_meta["train_config"]["steps"] == 60 and model_meta["dataset"] == "two-moons"
    assert model_meta["wall_time_s"] >= 0 and model_meta["params"] > 0 and "command" in model_meta


def test_learning_rate_schedule_closed_form():
    cfg = toy_config(lr=1e-3, warmup=10, steps=110, min_lr_frac=0.1)
    assert math.isclose(lr_at(cfg, 0), 1e-4) and math.isclose(lr_at(cfg, 9), 1e-3)
    assert math.isclose(lr_at(cfg, 10), 1e-3)
    assert math.isclose(lr_at(cfg, 60), 1e-3 * (0.1 + 0.9 * 0.5))  # halfway down the cosine
    assert math.isclose(lr_at(cfg, 110), 1e-4)


def test_batches_cover_each_epoch_once_and_ranks_do_not_overlap():
    n, b = 64, 8
    epoch = torch.cat([batch_indices(n, b, s, seed=3) for s in range(8)])
    assert sorted(epoch.tolist()) == list(range(n))
    r0, r1 = batch_indices(n, b, 2, 3, rank=0, world=2), batch_indices(n, b, 2, 3, rank=1, world=2)
    assert not set(r0.tolist()) & set(r1.tolist())
    assert not torch.equal(batch_indices(n, b, 0, 3), batch_indices(n, b, 8, 3))  # a new permutation per epoch


def test_ema_update_closed_form():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = [p.detach().clone() for p in a.parameters()]
    ema_update(a, b, 0.9)
    for pa, p0, pb in zip(a.parameters(), before, b.parameters()):
        torch.testing.assert_close(pa, 0.9 * p0 + 0.1 * pb)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(steps=0), "steps must be an integer >= 1, got 0"),
     (dict(lr=2.0), r"lr must be a finite number in \(0, 1\), got 2.0"),
     (dict(lr=float("nan")), r"lr must be a finite number in \(0, 1\), got nan"),
     (dict(weight_decay=1), r"weight_decay must be a finite number in \[0, 1\), got 1"),
     (dict(ema_decay=-0.5), r"ema_decay must be a finite number in \[0, 1\), got -0.5"),
     (dict(min_lr_frac=1.01), r"min_lr_frac must be a finite number in \[0, 1\], got 1.01"),
     (dict(grad_clip=math.inf), r"grad_clip must be a finite number > 0, got inf"),
     (dict(dataset="imagenet"), "unknown dataset 'imagenet'; allowed: fashion-mnist"),
     (dict(schedule="quad"), "schedule must be 'linear' or 'cosine'"), (dict(grad_clip=0.0), "grad_clip must be"),
     (dict(stop_after=-1), "stop_after must be an integer >= 0")],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        toy_config(**kwargs)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'; allowed: auto, cpu, cuda, cuda:N, mps"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
