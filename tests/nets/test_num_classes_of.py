"""One lookup of a model's class count (issue 20): ``nets.models.num_classes_of``. For fashion-mnist-cond it is
the label embedding's rows minus the "no label" row and what its JSON records; for an unconditional model, 0;
the guidance measurements draw one class per count it gives; no other module reads ``config.num_classes``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import ddim_lesson
from ddim_lesson.core.guidance import cfg
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.evaluate import guidance_eval
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser, UNet, UNetConfig, num_classes_of
from ddim_lesson.store.pretrained import load_pretrained

PKG = Path(ddim_lesson.__file__).resolve().parent
# Reads of config.num_classes outside the one lookup. core/guidance.py resolves cfg's num_classes argument against
# the model's (core cannot import nets).
OWN = {"nets/models.py", "core/guidance.py", "core/ideal_denoiser.py"}
PENDING: set[str] = set()  # none left


def test_fashion_mnist_cond_has_its_embedding_rows_minus_the_no_label_row():
    model, _, meta = load_pretrained("fashion-mnist-cond")
    k = num_classes_of(model)
    assert k == model.label_emb.num_embeddings - 1 == meta["model"]["config"]["num_classes"] == 10
    x, t = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.tensor([500, 900])
    with torch.no_grad():  # the label K is "no label": what the model does given none; K − 1 is a real class
        assert torch.equal(model(x, t, torch.full((2,), k)), model(x, t))
        assert not torch.allclose(model(x, t, torch.full((2,), k - 1)), model(x, t))
    assert num_classes_of(cfg(model, 3, 2.0)) == k  # the guidance wrapper is seen through


def test_an_unconditional_model_has_none():
    model, _, _ = load_pretrained("fashion-mnist")
    assert num_classes_of(model) == 0 and not hasattr(model, "label_emb")
    assert num_classes_of(MLPDenoiser(MLPConfig(hidden=8, depth=1))) == 0  # a config without num_classes
    assert num_classes_of(torch.nn.Linear(2, 2)) == 0  # no config at all


def test_class_samples_draws_each_class_the_lookup_gives():
    """A UNet with 3 classes (not the dataset's 10): class_samples must ask the model, not assume."""
    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_classes=3, attn_heads=2)).eval()
    x, y = guidance_eval.class_samples(model, NoiseSchedule.linear(T=20), 1.5, n_per_class=2, steps=2, seed=0)
    assert torch.equal(y, torch.tensor([0, 0, 1, 1, 2, 2])) and x.shape[0] == 6 == 2 * num_classes_of(model)


def readers_of_num_classes(pkg: Path = PKG) -> set[str]:
    pattern = re.compile(r"config\.num_classes\b|[\"']num_classes[\"'],\s*(0|None)\)")
    return {p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py") if pattern.search(p.read_text())}


def test_no_other_module_looks_the_class_count_up():
    found = readers_of_num_classes()
    assert "nets/models.py" in found
    assert found - OWN <= PENDING, f"a second num_classes lookup in {found - OWN - PENDING}"


@pytest.mark.parametrize("line", ["k = int(model.config.num_classes)",
                                  'k = getattr(getattr(model, "config", None), "num_classes", 0)'])
def test_the_scan_catches_a_planted_second_lookup(tmp_path, line):
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "planted.py").write_text(line + "\n")
    assert readers_of_num_classes(tmp_path) == {"evaluate/planted.py"}
