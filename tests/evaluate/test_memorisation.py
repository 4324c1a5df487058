"""Nearest neighbours, the memorisation rate and the agreement of two models, on data with a known answer."""

from __future__ import annotations

import pytest
import torch

from ddim_lesson.evaluate.memorisation import (
    RATIO,
    agreement,
    memorisation_rate,
    nearest_neighbours,
    pair_distances,
)


def _train(seed: int = 0, n: int = 500, shape: tuple[int, ...] = (1, 6, 6)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g) * 2 - 1  # (N, C, H, W) in [-1, 1]


def test_nearest_neighbours_match_brute_force_for_every_chunk() -> None:
    ref, g = _train(), torch.Generator().manual_seed(1)
    x = torch.rand((17, 1, 6, 6), generator=g) * 2 - 1
    full = torch.cdist(x.reshape(17, -1).double(), ref.reshape(500, -1).double())  # (B, N)
    want = full.topk(3, dim=1, largest=False)
    for chunk in (1, 7, 500, 10_000):
        nn = nearest_neighbours(x, ref, k=3, chunk=chunk)
        torch.testing.assert_close(nn.dist, want.values, atol=1e-10, rtol=0)
        assert torch.equal(nn.index, want.indices)
    # a planted bug: squared distances in place of distances would fail the same comparison
    assert float((nearest_neighbours(x, ref, k=3).dist.pow(2) - want.values).abs().max()) > 0.1


def test_exclude_finds_the_nearest_other_point() -> None:
    ref = _train()
    idx = torch.arange(0, 500, 25)  # (20,) training points asked about themselves
    own = nearest_neighbours(ref[idx], ref, k=1)
    assert torch.equal(own.index[:, 0], idx) and float(own.dist.max()) < 1e-6, "each point is its own neighbour"
    other = nearest_neighbours(ref[idx], ref, k=1, exclude=idx)
    assert not torch.equal(other.index[:, 0], idx)
    full = torch.cdist(ref[idx].reshape(20, -1).double(), ref.reshape(500, -1).double())
    full[torch.arange(20), idx] = torch.inf
    torch.testing.assert_close(other.dist[:, 0], full.min(1).values, atol=1e-10, rtol=0)


def test_copies_of_training_points_are_memorised_and_fresh_points_are_not() -> None:
    ref, g = _train(n=2000, shape=(1, 8, 8)), torch.Generator().manual_seed(2)
    pick = torch.randint(0, 2000, (64,), generator=g)
    copies = ref[pick] + 0.01 * torch.randn((64, 1, 8, 8), generator=g)
    nn = nearest_neighbours(copies, ref)
    assert torch.equal(nn.index[:, 0], pick), "a copy's nearest training point is its source"
    assert memorisation_rate(nn.dist) == 1.0
    fresh = torch.rand((64, 1, 8, 8), generator=g) * 2 - 1  # new draws from the same distribution
    assert memorisation_rate(nearest_neighbours(fresh, ref).dist) == 0.0
    # half and half: exactly half
    mixed = torch.cat([copies[:32], fresh[:32]])
    assert memorisation_rate(nearest_neighbours(mixed, ref).dist) == 0.5


def test_memorisation_rate_is_the_ratio_rule() -> None:
    d = torch.tensor([[0.1, 1.0], [0.3, 1.0], [0.34, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    assert RATIO == pytest.approx(1 / 3)
    assert memorisation_rate(d) == pytest.approx(3 / 5)  # 0.1, 0.3 and the exact duplicate; 0.34 > 1/3 is not
    assert memorisation_rate(d, ratio=0.5) == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match="ratio"):
        memorisation_rate(d, ratio=0.0)
    with pytest.raises(ValueError, match="d1 and d2"):
        memorisation_rate(d[:, :1])


def test_agreement_is_zero_for_one_map_and_near_one_for_independent_samples() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn((200, 1, 4, 4), generator=g, dtype=torch.float64)
    assert agreement(a, a.clone()) == 0.0
    b = torch.randn((200, 1, 4, 4), generator=g, dtype=torch.float64)
    assert abs(agreement(a, b) - 1.0) < 0.05, agreement(a, b)
    # a close copy: the paired distance is the noise's, sqrt(16)·0.01 = 0.04, against about sqrt(2·16) = 5.7
    close = agreement(a, a + 0.01 * torch.randn(a.shape, generator=g, dtype=torch.float64))
    assert 0.003 < close < 0.012, close
    torch.testing.assert_close(pair_distances(a, b), (a - b).reshape(200, -1).norm(dim=1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("call, match", [
    (lambda a: nearest_neighbours(a, a[:, :, :2]), "same shape per point"),
    (lambda a: nearest_neighbours(a, a, k=0), "k must be"),
    (lambda a: nearest_neighbours(a, a, k=11), "k must be"),
    (lambda a: nearest_neighbours(a, a, k=10, exclude=torch.arange(10)), "k must be"),
    (lambda a: nearest_neighbours(a, a, exclude=torch.arange(3)), "exclude"),
    (lambda a: nearest_neighbours(a.long(), a), "floating"),
    (lambda a: nearest_neighbours(a * float("nan"), a), "finite"),
    (lambda a: agreement(a[:1], a[:1]), "B"),
    (lambda a: agreement(a, a[:5]), "same shape"),
    (lambda a: agreement(torch.ones_like(a), torch.ones_like(a)), "undefined"),
])
def test_bad_inputs_raise_naming_the_value(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call(torch.randn(10, 1, 3, 3))
