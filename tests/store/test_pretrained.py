"""The shipped models: they load by name (EMA weights, eval mode, CPU, their schedule), and the
2-D model's samples lie on the two moons."""

import math

import pytest
import torch

import ddim_lesson
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.evaluate.generate import sample_in_batches
from ddim_lesson.nets.models import MLPDenoiser, UNet
from ddim_lesson.store.pretrained import PRETRAINED, WEIGHTS_DIR, pretrained, pretrained_meta

HAVE_FASHION = all((WEIGHTS_DIR / f"fashion-mnist{s}").exists() for s in (".safetensors", ".json"))


def _moon_curves(n=2000):
    """The noise-free two-moons curves of data.toy_2d: (cos u, sin u) and (1 - cos u, 1/2 - sin u),
    u in [0, π], shifted by (-1/2, -1/4) and scaled by 1.4."""
    u = torch.linspace(0, math.pi, n, dtype=torch.float64)
    shift = torch.tensor([0.5, 0.25], dtype=torch.float64)
    upper = (torch.stack([torch.cos(u), torch.sin(u)], 1) - shift) * 1.4
    lower = (torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], 1) - shift) * 1.4
    return upper, lower


def test_two_moons_loads_in_eval_mode_on_cpu_with_its_schedule():
    model, schedule = ddim_lesson.pretrained("two-moons")
    assert isinstance(model, MLPDenoiser) and not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    meta = pretrained_meta("two-moons")
    assert meta["dataset"] == "two-moons" and meta["schedule"]["kind"] == "linear"
    assert torch.equal(schedule.betas, NoiseSchedule.from_dict(meta["schedule"]).betas)
    assert torch.equal(schedule.betas, NoiseSchedule.linear(1000).betas)
    assert model(torch.zeros(3, 2), torch.tensor([0, 500, 999])).shape == (3, 2)


def test_two_moons_samples_lie_on_the_moons():
    """Fresh data: 95% of points lie within 0.1 of the curves (the noise has σ = 0.05); a standard
    Gaussian: 14%. The shipped model at DDIM 20 steps must come close to the data, on both moons."""
    model, schedule = pretrained("two-moons")
    x = sample_in_batches(model, schedule, 1000, 1000, steps=20, seed=0).double()
    upper, lower = _moon_curves()
    d_up, d_low = torch.cdist(x, upper).min(1).values, torch.cdist(x, lower).min(1).values
    near = (torch.minimum(d_up, d_low) < 0.1).double().mean()
    assert near > 0.85, float(near)
    assert 0.4 < float((d_up < d_low).double().mean()) < 0.6  # both moons, about equally


@pytest.mark.skipif(not HAVE_FASHION, reason=f"the fashion-mnist weights are not in {WEIGHTS_DIR} yet")
def test_fashion_mnist_loads():
    model, schedule = pretrained("fashion-mnist")
    assert isinstance(model, UNet) and not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert (model.config.in_channels, model.config.image_size) == (1, 28)
    assert schedule.T == 1000 and pretrained_meta("fashion-mnist")["dataset"] == "fashion-mnist"
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28), torch.tensor([10, 900])).shape == (2, 1, 28, 28)


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown pretrained model 'cifar'; allowed: fashion-mnist, two-moons"):
        pretrained("cifar")
    assert set(PRETRAINED) == {"fashion-mnist", "two-moons", "fashion-mnist-cond", "fashion-mnist-fm",
                               "fashion-mnist-distilled", *PAIRS}


# notebook 09's two-networks experiment: two pairs of narrow UNets on disjoint parts of the training set
PAIRS = {"fashion-mnist-half-a": ("0/2", 0, 6000), "fashion-mnist-half-b": ("1/2", 0, 6000),
         "fashion-mnist-n100-a": ("0/2", 100, 4000), "fashion-mnist-n100-b": ("1/2", 100, 4000)}
CARD = (WEIGHTS_DIR / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_two_networks_models_load_small_with_their_recipe_in_json_and_card(name):
    subset, n_images, steps = PAIRS[name]
    model, schedule = pretrained(name)
    assert isinstance(model, UNet) and not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert (model.config.base_channels, model.config.channel_mults, model.config.num_res_blocks) == (16, (1, 2, 2), 1)
    assert torch.equal(schedule.betas, NoiseSchedule.linear(1000).betas)
    assert (WEIGHTS_DIR / f"{name}.safetensors").stat().st_size < 1_000_000, "keep each shipped file under 1 MB"
    meta = pretrained_meta(name)
    cfg = meta["train_config"]
    assert (meta["dataset"], cfg["subset"], cfg["n_images"]) == ("fashion-mnist", subset, n_images)
    assert meta["steps"] == cfg["steps"] == steps
    assert f"--subset {subset}" in meta["command"] and f"--steps {steps}" in meta["command"]
    assert ("--n-images 100" in meta["command"]) == (n_images == 100)
    assert meta["wall_time_s"] > 0
    assert meta["command"] in CARD.replace(" \\\n    ", " "), f"the model card must give {name}'s exact command"
    assert any(line.startswith("## ") and name in line for line in CARD.splitlines()), f"{name} needs a card heading"
    with torch.no_grad():
        eps = model(torch.randn(2, 1, 28, 28), torch.tensor([10, 900]))
    assert eps.shape == (2, 1, 28, 28) and torch.isfinite(eps).all()


def test_each_pair_shares_its_recipe_and_trained_on_disjoint_images():
    """The recipe differs only in the part of the data (and the run folder); the parts never share an image,
    and the pair's weights differ (two trainings, not one file shipped twice)."""
    from ddim_lesson.train.train_config import subset_indices

    for a, b in (("fashion-mnist-half-a", "fashion-mnist-half-b"), ("fashion-mnist-n100-a", "fashion-mnist-n100-b")):
        ca, cb = pretrained_meta(a)["train_config"], pretrained_meta(b)["train_config"]
        drop = ("subset", "out")
        assert {k: v for k, v in ca.items() if k not in drop} == {k: v for k, v in cb.items() if k not in drop}
        ia = subset_indices(60000, ca["subset"], ca["n_images"])
        ib = subset_indices(60000, cb["subset"], cb["n_images"])
        assert len(ia) == len(ib) == (ca["n_images"] or 30000)
        assert not set(ia.tolist()) & set(ib.tolist())
        assert pretrained_meta(a)["weights_sha256"] != pretrained_meta(b)["weights_sha256"]
    # the small sets are the first 100 of the halves, so each n100 model saw a subset of one half model's data
    assert torch.equal(subset_indices(60000, "0/2", 100), subset_indices(60000, "0/2")[:100])


def test_the_flow_matching_twin_ships_with_the_fashion_mnist_recipe() -> None:
    """Notebook 10's twin: the shipped fashion-mnist UNet's architecture, data and steps, the flow objective."""
    import json

    from ddim_lesson.store.pretrained import PRETRAINED, weights_path

    assert "fashion-mnist-fm" in PRETRAINED
    twin, _ = pretrained("fashion-mnist-fm")
    base, _ = pretrained("fashion-mnist")
    assert twin.config.base_channels == base.config.base_channels and twin.config.time_scale == 1000.0
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in base.parameters())
    card = json.loads(weights_path("fashion-mnist-fm").with_suffix(".json").read_text())
    ref = json.loads(weights_path("fashion-mnist").with_suffix(".json").read_text())
    assert card["train_config"]["objective"] == "flow" and card["steps"] == ref["steps"] == 6000
    for key in ("batch_size", "lr", "warmup", "channel_mults", "num_res_blocks", "ema_decay", "dataset"):
        assert card["train_config"][key] == ref["train_config"][key], key
    assert weights_path("fashion-mnist-fm").with_suffix(".safetensors").stat().st_size < 4_000_000


def test_pretrained_meta_reads_the_card_alone_and_equals_what_the_loader_returns(monkeypatch):
    """pretrained_meta reads NAME.json only (no weights are read or built), and returns the very metadata
    load_pretrained gives with the checked weights."""
    import ddim_lesson.store.pretrained as P

    loaded = {name: P.load_pretrained(name)[2] for name in P.PRETRAINED}

    def no_weights(*args, **kwargs):
        raise AssertionError("pretrained_meta read the weights")

    monkeypatch.setattr(P, "load_model", no_weights)
    for name, meta in loaded.items():
        assert pretrained_meta(name) == meta, name
    with pytest.raises(ValueError, match="unknown pretrained model"):
        pretrained_meta("no-such-model")
