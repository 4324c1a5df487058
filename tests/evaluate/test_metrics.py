"""Classifier FID: the Fréchet distance against closed forms, the shipped classifier and its reference stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddim_lesson.evaluate import metrics
from ddim_lesson.evaluate.metrics import FeatureStats, frechet_distance, sqrtm_psd
from ddim_lesson.nets.classifier import ClassifierConfig, FashionClassifier, accuracy
from ddim_lesson.store.checkpoints import load_checkpoint
from ddim_lesson.store.classifier_io import CLASSIFIER_WEIGHTS as WEIGHTS
from ddim_lesson.store.classifier_io import load_classifier
from ddim_lesson.store.data import DataNotFoundError


def _random_orthogonal(d: int, g: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


def _psd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d + 3, generator=g, dtype=torch.float64)
    return a @ a.T / d


# -- the maths ---------------------------------------------------------------------------------
def test_frechet_distance_matches_closed_form_for_diagonal_covariances():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    a, b = (torch.rand(6, generator=g, dtype=torch.float64) + 0.1 for _ in range(2))
    # diagonal: tr(C1 + C2 - 2 (C1 C2)^½) = Σ (√a - √b)²
    want = float(((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(m1, torch.diag(a), m2, torch.diag(b)) == pytest.approx(want, rel=1e-10)


def test_frechet_distance_matches_closed_form_for_commuting_rotated_covariances():
    g = torch.Generator().manual_seed(1)
    d = 8
    q = _random_orthogonal(d, g)
    a, b = torch.rand(d, generator=g, dtype=torch.float64) * 3, torch.rand(d, generator=g, dtype=torch.float64)
    c1, c2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T  # commute, but are not diagonal
    m1, m2 = torch.zeros(d), torch.ones(d)
    want = d + float(((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(want, rel=1e-9)


def test_frechet_distance_matches_an_independent_route_for_non_commuting_covariances():
    # tr (C1 C2)^½ = Σ √λ over the (real, >= 0) eigenvalues of the non-symmetric C1 C2, via numpy
    g = torch.Generator().manual_seed(2)
    d = 10
    c1, c2 = _psd(d, g), _psd(d, g)
    m1, m2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    lam = np.linalg.eigvals(c1.numpy() @ c2.numpy())
    want = float(((m1 - m2) ** 2).sum() + torch.trace(c1) + torch.trace(c2)) - 2 * np.sqrt(lam.real.clip(0)).sum()
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(want, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    g = torch.Generator().manual_seed(3)
    f1 = torch.randn(400, 16, generator=g) @ torch.randn(16, 16, generator=g)
    f2 = torch.randn(300, 16, generator=g) * 2 + 1
    s1, s2 = FeatureStats.of(f1), FeatureStats.of(f2)
    assert s1.distance(FeatureStats.of(f1[torch.randperm(400, generator=g)])) < 1e-6
    assert s1.distance(s2) == pytest.approx(s2.distance(s1), rel=1e-9)
    assert s1.distance(s2) > 1.0


def test_feature_stats_are_the_sample_mean_and_unbiased_covariance():
    f = torch.randn(50, 4, generator=torch.Generator().manual_seed(4))
    s = FeatureStats.of(f)
    np.testing.assert_allclose(s.mu.numpy(), f.double().numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.cov.numpy(), np.cov(f.double().numpy(), rowvar=False), rtol=1e-10)
    assert s.n == 50


def test_sqrtm_psd_squares_back_and_survives_round_off():
    g = torch.Generator().manual_seed(5)
    a = _psd(12, g)
    s = sqrtm_psd(a)
    assert torch.allclose(s @ s, a, rtol=1e-9, atol=1e-9)
    low_rank = torch.randn(12, 3, generator=g, dtype=torch.float64)
    r = sqrtm_psd(low_rank @ low_rank.T)  # eigenvalues ~ -1e-16 must not give NaN
    assert torch.isfinite(r).all()


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="D"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
    with pytest.raises(ValueError, match="N >= 2"):
        FeatureStats.of(torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        metrics.features(torch.zeros(2, 3, 28, 28), FashionClassifier().eval())
    with pytest.raises(ValueError, match="finite"):
        metrics.features(torch.full((2, 1, 28, 28), float("nan")), FashionClassifier().eval())


# -- the shipped classifier and reference statistics -------------------------------------------
def test_shipped_classifier_is_small_and_reports_its_accuracy():
    model, meta = load_classifier()
    assert sum(p.numel() for p in model.parameters()) < 200_000
    assert WEIGHTS.with_name("classifier.safetensors").stat().st_size < 1_000_000
    assert meta["test_accuracy"] >= 0.88
    assert "benchmarks/train_classifier.py" in meta["command"]
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert model.features(torch.zeros(3, 1, 28, 28)).shape == (3, ClassifierConfig().feature_dim)


@pytest.fixture(scope="module")
def fashion_test_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 500 Fashion-MNIST test images and labels."""
    from ddim_lesson.store.data import load_images

    try:
        x, y = load_images("fashion-mnist", train=False, with_labels=True)
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist)")
    return x[:500], y[:500]


def test_shipped_classifier_classifies_real_test_images(fashion_test_images):
    x, y = fashion_test_images
    model, _ = load_classifier()
    assert accuracy(model, x, y) >= 0.85


def test_reference_stats_have_the_right_shapes_are_psd_and_match_the_classifier():
    _, sha = metrics.classifier_and_sha()
    ref = metrics.load_stats(metrics.SHIPPED_STATS, sha)  # raises if computed with another classifier
    d = ClassifierConfig().feature_dim
    assert ref.mu.shape == (d,) and ref.cov.shape == (d, d) and ref.n == 10_000
    assert torch.equal(ref.cov, ref.cov.T) or torch.allclose(ref.cov, ref.cov.T, rtol=1e-12)
    w = torch.linalg.eigvalsh(ref.cov)
    assert w.min() >= -1e-9 * w.max()
    _, meta = load_checkpoint(metrics.SHIPPED_STATS)
    assert meta["split"] == "test" and meta["classifier_sha256"] == sha


def test_reference_stats_agree_with_features_recomputed_on_a_subset(fashion_test_images):
    x = fashion_test_images[0]
    ref = metrics.reference_stats("test")
    sub = FeatureStats.of(metrics.features(x))
    se = (ref.cov.diagonal() / sub.n).sqrt()  # standard error of each mean over n draws
    assert ((sub.mu - ref.mu).abs() <= 6 * se + 1e-6).all()
    assert float(sub.cov.trace()) == pytest.approx(float(ref.cov.trace()), rel=0.15)
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert sub.distance(ref) < 0.1 * metrics.fid(noise, ref)


def test_reference_stats_are_computed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path))
    calls = []

    def fake_split(split: str) -> torch.Tensor:
        calls.append(split)
        return torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1

    monkeypatch.setattr(metrics, "split_images", fake_split)
    first = metrics.reference_stats("train-holdout")
    second = metrics.reference_stats("train-holdout")
    assert calls == ["train-holdout"]
    assert torch.equal(first.cov, second.cov) and torch.equal(first.mu, second.mu)
    _, sha = metrics.classifier_and_sha()
    assert list((tmp_path / "fid").glob(f"{sha[:16]}-train-holdout.safetensors"))
    with pytest.raises(ValueError, match="allowed: test, train-holdout"):
        metrics.reference_stats("validation")


# -- mse ---------------------------------------------------------------------------------------
def test_mse_matches_numpy_and_a_closed_form() -> None:
    g = torch.Generator().manual_seed(9)
    a, b = torch.randn(4, 1, 5, 6, generator=g), torch.randn(4, 1, 5, 6, generator=g)
    want = float(np.mean((a.numpy().astype(np.float64) - b.numpy().astype(np.float64)) ** 2))
    assert metrics.mse(a, b) == pytest.approx(want, rel=1e-5)
    assert metrics.mse(a, a + 0.5) == pytest.approx(0.25, rel=1e-6)  # a constant shift c gives c²
    planted = float(((a - b) ** 2).sum(dim=(1, 2, 3)).mean())  # planted bug: summed over pixels, not averaged
    assert metrics.mse(a, b) != pytest.approx(planted, rel=0.5)


def test_mse_refuses_shapes_that_would_broadcast() -> None:
    with pytest.raises(ValueError, match="same shape"):
        metrics.mse(torch.zeros(4, 1, 5, 5), torch.zeros(1, 5, 5))  # would broadcast silently
    with pytest.raises(ValueError, match="non-empty"):
        metrics.mse(torch.zeros(0), torch.zeros(0))


def test_mse_of_single_images_as_notebook_05_calls_it_and_the_docstring_says_any_shape() -> None:
    g = torch.Generator().manual_seed(10)
    a, b = torch.randn(1, 5, 6, generator=g), torch.randn(1, 5, 6, generator=g)  # one image (C, H, W)
    want = float(np.mean((a.numpy().astype(np.float64) - b.numpy().astype(np.float64)) ** 2))
    assert metrics.mse(a, b) == pytest.approx(want, rel=1e-5)
    assert metrics.mse(a, b) == metrics.mse(a[None], b[None])  # the same as a batch of one
    planted = float(((a - b) ** 2).sum())  # planted bug: summed over the image's pixels, not averaged
    assert metrics.mse(a, b) != pytest.approx(planted, rel=0.5)
    doc = " ".join(metrics.mse.__doc__.split())
    assert "any shape, the same for both" in doc and "same shape (B, ...)" not in doc
