"""eps_gap_by_t: two models on the same x_t, checked with an oracle that knows ε and with the ideal denoiser."""

from __future__ import annotations

import pytest
import torch

from ddim_lesson import IdealDenoiser, NoiseSchedule
from ddim_lesson.evaluate.eps_gap import eps_gap_by_t

SCHEDULE = NoiseSchedule.linear()


class Oracle:
    """Knows x0, so returns the true ε = (x_t − √ᾱ x0)/√(1 − ᾱ) for the batch it was built with."""

    def __init__(self, x0: torch.Tensor) -> None:
        self.x0 = x0.double()

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = SCHEDULE.alphas_cumprod[t].view(-1, *([1] * (x_t.ndim - 1)))
        return (x_t.double() - a.sqrt() * self.x0) / (1 - a).sqrt()


def test_oracle_has_no_error_and_zero_has_error_one() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((64, 1, 5, 5), generator=g, dtype=torch.float64) * 2 - 1
    ts = [0, 100, 500, 999]
    res = eps_gap_by_t(Oracle(x0), lambda x, t: torch.zeros_like(x), SCHEDULE, x0, ts,
                       generator=torch.Generator().manual_seed(1))
    assert res.timesteps == ts
    assert float(res.mse_a.max()) < 1e-20
    # E[ε²] = 1 per dimension; 1600 draws per t: within 4 standard errors (sd of ε² is √2)
    assert float((res.mse_b - 1).abs().max()) < 4 * 2**0.5 / 1600**0.5
    torch.testing.assert_close(res.gap, res.mse_b, atol=1e-12, rtol=0)
    # the same seed gives the same noise, so the same numbers
    again = eps_gap_by_t(Oracle(x0), lambda x, t: torch.zeros_like(x), SCHEDULE, x0, ts,
                         generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.mse_b, res.mse_b)


def test_ideal_denoiser_is_exact_on_its_training_points_at_small_t_but_not_on_new_ones() -> None:
    g = torch.Generator().manual_seed(2)
    train = torch.rand((40, 16), generator=g, dtype=torch.float64) * 2 - 1
    held_out = torch.rand((40, 16), generator=g, dtype=torch.float64) * 2 - 1
    both = torch.cat([train, held_out])  # (80, 16): one call per model and t, split by column after
    ideal = IdealDenoiser(train, SCHEDULE)
    res = eps_gap_by_t(ideal, Oracle(both), SCHEDULE, both, [5, 50], generator=torch.Generator().manual_seed(3))
    assert res.err_a.shape == (2, 80)
    assert float(res.err_a[:, :40].max()) < 1e-8, "the posterior picks the right training point"
    assert float(res.err_a[:, 40:].mean(1).min()) > 10, "it snaps a new point to a training point: ε is far off"
    torch.testing.assert_close(res.err_ab, res.err_a, atol=1e-9, rtol=1e-9)  # b is the oracle
    torch.testing.assert_close(res.mse_a, res.err_a.mean(1), atol=0, rtol=0)


@pytest.mark.parametrize("kw, match", [
    ({"timesteps": [1000]}, "timestep"),
    ({"timesteps": []}, "at least one"),
    ({"x0": torch.zeros(3)}, "x0 must"),
])
def test_bad_inputs(kw, match) -> None:
    args = {"timesteps": [10], "x0": torch.zeros(4, 2)} | kw
    with pytest.raises(ValueError, match=match):
        eps_gap_by_t(lambda x, t: x, lambda x, t: x, SCHEDULE, args["x0"], args["timesteps"])
