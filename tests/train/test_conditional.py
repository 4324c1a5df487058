"""The class-conditional UNet and its training: labels, "no label", label dropout, init from an
unconditional model, resume; the unconditional model is untouched by all of it."""

from __future__ import annotations

import json

import pytest
import torch

from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.nets.models import UNet, UNetConfig
from ddim_lesson.store.checkpoints import load_model, save_model
from ddim_lesson.store.data import DEBIAN_DIR, IDX_FILES, load_images
from ddim_lesson.store.pretrained import weights_path
from ddim_lesson.train import loop as train_mod
from ddim_lesson.train.conditional import drop_labels, init_from_weights
from ddim_lesson.train.loop import train
from ddim_lesson.train.train_config import TrainConfig

HAVE_DEBIAN = all((DEBIAN_DIR / (f + ".gz")).exists() for f in IDX_FILES)
TINY = dict(base_channels=8, channel_mults=(1, 2))


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Trained-looking weights: the zero-initialised head and label embedding would hide every difference."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_the_shipped_unconditional_model_loads_unchanged():
    meta = json.loads(weights_path("fashion-mnist").with_suffix(".json").read_text())
    model, _, _ = load_model(weights_path("fashion-mnist"))
    assert model.config.num_classes == 0 and not hasattr(model, "label_emb")
    assert model.config.to_dict() == meta["model"]["config"]  # no num_classes key: configs read as before
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))


def test_labels_change_the_output_and_a_missing_label_means_no_label():
    net = _randomise(UNet(UNetConfig(**TINY, num_classes=4)))
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([10, 400, 900])
    with torch.no_grad():
        outs = [net(x, t, torch.full((3,), k)) for k in range(5)]
        torch.testing.assert_close(net(x, t), outs[4], atol=0, rtol=0)
    for a in range(5):
        for b in range(a):
            assert (outs[a] - outs[b]).abs().max() > 1e-3, (a, b)
    assert net.label_emb.num_embeddings == 5  # 4 classes + "no label"


@pytest.mark.parametrize("y, match", [
    (torch.tensor([0, 5]), r"label must be an integer in \[0, 4\] \(4: no label\), got 5"),
    (torch.tensor([-1, 0]), r"label must be an integer in \[0, 4\] \(4: no label\), got -1"),
    (torch.tensor([0.0, 1.0]), "int64 tensor of shape"),
    (torch.tensor([0, 1, 2]), r"shape \(2,\)"),
])
def test_bad_labels_are_refused(y, match):
    net = UNet(UNetConfig(**TINY, num_classes=4))
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), y)


@pytest.mark.parametrize("k", [-1, 1.5, True])
def test_num_classes_must_be_a_non_negative_integer(k):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 0"):
        UNetConfig(num_classes=k)


def test_init_from_an_unconditional_model_reproduces_it_without_a_label(tmp_path):
    base = _randomise(UNet(UNetConfig(**TINY)))
    save_model(tmp_path / "base", base, NoiseSchedule.linear(1000))
    cond = UNet(UNetConfig(**TINY, num_classes=3)).eval()
    assert init_from_weights(cond, tmp_path / "base") == ["label_emb.weight"]
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 100, 500, 999])
    with torch.no_grad():
        ref = base(x, t)
        torch.testing.assert_close(cond(x, t, torch.full((4,), 3)), ref, atol=0, rtol=0)  # "no label"
        torch.testing.assert_close(cond(x, t), ref, atol=0, rtol=0)
        for k in range(3):  # the class rows start random, so each label already says something different
            assert (cond(x, t, torch.full((4,), k)) - ref).abs().max() > 1e-3


def test_init_from_a_model_of_another_size_is_refused(tmp_path):
    save_model(tmp_path / "other", UNet(UNetConfig(base_channels=16, channel_mults=(1, 2))), NoiseSchedule.linear(10))
    with pytest.raises(ValueError, match="do not fit this model.*of another shape"):
        init_from_weights(UNet(UNetConfig(**TINY, num_classes=3)), tmp_path / "other")


def test_drop_labels_replaces_a_fraction_p_with_no_label():
    y = torch.arange(10).repeat(2000)  # (20000,)
    out = drop_labels(y, 0.1, 10, torch.Generator().manual_seed(0))
    dropped = out == 10
    assert abs(dropped.float().mean() - 0.1) < 0.01  # binomial sd 0.002
    assert torch.equal(out[~dropped], y[~dropped])
    assert (drop_labels(y, 0.0, 10, torch.Generator()) == y).all()
    assert (drop_labels(y, 1.0, 10, torch.Generator()) == 10).all()


@pytest.mark.parametrize("kw, match", [
    (dict(label_dropout=1.5), r"label_dropout must be a finite number in \[0, 1\], got 1.5"),
    (dict(num_classes=-1), "num_classes must be an integer >= 0"),
    (dict(num_classes=2, dataset="two-moons"), "num_classes must be 0 for the toy dataset"),
])
def test_train_config_refuses_bad_conditional_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def _tiny(out, **kw):
    base = dict(dataset="fashion-mnist", n_images=256, steps=12, batch_size=8, lr=3e-3, warmup=2, **TINY,
                num_classes=10, label_dropout=0.3, device="cpu", progress=False, ckpt_every=100, out=str(out))
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DEBIAN, reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR})")
def test_conditional_training_learns_labels_and_resumes_like_the_unconditional(tmp_path):
    full = train(_tiny(tmp_path / "full"))
    assert full.model.config.num_classes == 10 and full.model.label_emb.weight.abs().sum() > 0  # labels were used
    train(_tiny(tmp_path / "part", stop_after=5))
    resumed = train(_tiny(tmp_path / "part", resume=True))
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full.losses), atol=1e-7, rtol=0)
    for (name, a), b in zip(resumed.ema.state_dict().items(), full.ema.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    model, _, meta = load_model(tmp_path / "full" / "model")
    assert model.config.num_classes == 10 and meta["train_config"]["label_dropout"] == 0.3


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DEBIAN, reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR})")
def test_training_feeds_the_dataset_labels_with_dropout(tmp_path, monkeypatch):
    seen = []
    real = train_mod.diffusion_loss

    def spy(model, x0, schedule, g, y=None):
        seen.append(y.clone())
        return real(model, x0, schedule, g, y)

    monkeypatch.setattr(train_mod, "diffusion_loss", spy)
    train(_tiny("", steps=20, batch_size=32, label_dropout=0.25, n_images=0))
    y = torch.cat(seen)  # (640,)
    _, labels = load_images("fashion-mnist", train=True, with_labels=True)
    kept = y[y != 10]
    assert len(seen) == 20 and set(kept.tolist()) == set(range(10))  # real labels, all classes
    assert 0.15 < float((y == 10).float().mean()) < 0.35  # dropped at about the rate asked (binomial sd 0.017)
    first = train_mod.batch_indices(labels.shape[0], 32, 0, 0)
    assert torch.equal(seen[0][seen[0] != 10], labels[first][seen[0] != 10])  # each image with its own label


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DEBIAN, reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR})")
def test_training_with_init_from_starts_at_the_source_model(tmp_path):
    base = _randomise(UNet(UNetConfig(**TINY)))
    save_model(tmp_path / "base", base, NoiseSchedule.linear(1000))
    res = train(_tiny(tmp_path / "ft", steps=1, lr=1e-9, warmup=0, init_from=str(tmp_path / "base")))
    for name, p in base.state_dict().items():  # one step at lr 1e-9 moves nothing visibly
        torch.testing.assert_close(res.model.state_dict()[name], p, atol=1e-6, rtol=0, msg=name)


def test_the_shipped_conditional_model_follows_its_labels():
    from ddim_lesson import pretrained
    from ddim_lesson.evaluate.guidance_eval import class_samples, classify

    model, schedule = pretrained("fashion-mnist-cond")
    assert model.config.num_classes == 10 and not model.training
    x, y = class_samples(model, schedule, 3.0, 2, 10, seed=0)  # 2 per class, DDIM 10 steps, scale 3
    on_class = float((classify(x)[1].argmax(1) == y).float().mean())
    assert on_class >= 0.8, on_class  # measured 1.0 (20 of 20) for seeds 0 and 1
    with torch.no_grad():
        xt, t = torch.randn(2, 1, 28, 28), torch.tensor([300, 800])
        torch.testing.assert_close(model(xt, t), model(xt, t, torch.tensor([10, 10])), atol=0, rtol=0)
