"""The exercise checkers and plotting helpers that notebooks 04 and 05 use."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ddim_lesson import NoiseSchedule, ddim_sigma, ddim_timesteps, lerp  # noqa: E402
from ddim_lesson.exercises import (  # noqa: E402
    SOLUTIONS,
    check_invert_step,
    check_slerp,
    check_step_sigmas,
    reference_invert_step,
    reference_slerp,
    reference_step_sigmas,
)
from ddim_lesson.plotting import plot_curves, plot_image_rows, plot_paths_2d  # noqa: E402


def not_yet(*_):
    raise NotImplementedError


# -- σ per step ----------------------------------------------------------------------------------
def test_step_sigmas_reference_matches_closed_forms():
    s = NoiseSchedule.linear(1000)
    ts = ddim_timesteps(1000, 1000, "trailing")  # all T steps: η = 1 gives DDPM's √β̃_t
    sig = reference_step_sigmas(s, ts, 1.0)
    abar = s.alphas_cumprod
    abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    beta_tilde = (1 - abar_prev) / (1 - abar) * s.betas  # (T,) indexed by t
    torch.testing.assert_close(sig, beta_tilde[ts].sqrt())
    ts10 = ddim_timesteps(1000, 10, "trailing")
    sig10 = reference_step_sigmas(s, ts10, 0.5)
    assert sig10[-1] == 0  # the last step goes to ᾱ = 1
    assert math.isclose(float(sig10[0]), ddim_sigma(s.abar(999), s.abar(899), 0.5), rel_tol=1e-12)


def test_check_step_sigmas():
    assert check_step_sigmas(reference_step_sigmas) is True
    assert check_step_sigmas(not_yet) is False


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, ts, eta: reference_step_sigmas(s, ts, eta) ** 2, "variances"),
    (lambda s, ts, eta: torch.cat([reference_step_sigmas(s, ts, eta)[:-1],
                                   torch.full((1,), 0.01, dtype=torch.float64)]), "except the last"),
    (lambda s, ts, eta: reference_step_sigmas(s, ts, eta)[:-1], "shape"),
])
def test_check_step_sigmas_wrong_answers(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        check_step_sigmas(wrong)


def test_check_step_sigmas_catches_one_step_previous():
    def consecutive(s, ts, eta):  # ᾱ_(t-1) instead of the next timestep of the sequence
        abar = torch.cat([torch.ones(1, dtype=torch.float64), s.alphas_cumprod])
        a_t, a_prev = abar[ts + 1], abar[ts]
        return eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()

    with pytest.raises(AssertionError, match="timesteps\\[i\\+1\\]"):
        check_step_sigmas(consecutive)


# -- slerp ---------------------------------------------------------------------------------------
def test_check_slerp():
    assert check_slerp(reference_slerp) is True
    assert check_slerp(not_yet) is False
    with pytest.raises(AssertionError, match="that is lerp"):
        check_slerp(lerp)
    with pytest.raises(AssertionError, match="norm 1"):
        check_slerp(lambda a, b, t: reference_slerp(a, b, t) / reference_slerp(a, b, t).norm(dim=-1, keepdim=True))


def test_reference_slerp_keeps_norm_of_orthogonal_pair():
    z0, z1 = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    mid = reference_slerp(z0, z1, 0.5)
    torch.testing.assert_close(mid, torch.tensor([[3 / math.sqrt(2), 3 / math.sqrt(2)]]))


# -- the inversion step --------------------------------------------------------------------------
def test_reference_invert_step_is_undone_by_ddim_step():
    from ddim_lesson import ddim_step

    x, eps = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 1, 4, 4, dtype=torch.float64)
    up = reference_invert_step(x, eps, 0.9, 0.4)
    back, _ = ddim_step(up, eps, 0.4, 0.9)  # the same eps: the step is exactly undone
    torch.testing.assert_close(back, x)


def test_check_invert_step():
    assert check_invert_step(reference_invert_step) is True
    assert check_invert_step(not_yet) is False
    with pytest.raises(AssertionError, match="wrong way"):
        check_invert_step(lambda x, e, a, b: reference_invert_step(x, e, b, a) if a < 1 else
                          reference_invert_step(x, e, a, b))
    with pytest.raises(AssertionError, match="square roots"):
        check_invert_step(lambda x, e, a, b: b * (x - (1 - a) * e) / a + (1 - b) * e)


def test_solutions_registered():
    assert {"step_sigmas", "slerp", "invert_step"} <= set(SOLUTIONS)


# -- plotting ------------------------------------------------------------------------------------
def test_plot_image_rows():
    rows = {"a": torch.zeros(3, 1, 28, 28), "b": torch.ones(2, 1, 28, 28)}
    fig = plot_image_rows(rows, col_titles=["x", "y", "z"], title="t")
    axes = fig.axes
    assert len(axes) == 6
    assert axes[0].get_ylabel() == "a" and axes[3].get_ylabel() == "b" and axes[2].get_title() == "z"
    assert not axes[5].axison  # row b has only 2 images
    plt.close(fig)
    with pytest.raises(ValueError, match="column title"):
        plot_image_rows(rows, col_titles=["x"])
    with pytest.raises(ValueError, match="empty"):
        plot_image_rows({})


def test_plot_curves_and_paths():
    fig = plot_curves({"c": ([1, 2, 3], [3.0, 2.0, 1.0])}, "x", "y", logx=True, hlines={"ref": 0.5})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "x"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["c", "ref"]
    plt.close(fig)
    xs = torch.randn(11, 20, 2)
    fig = plot_paths_2d({"DDPM": xs, "DDIM": xs[::5]}, data=torch.randn(50, 2), n_paths=3)
    assert [a.get_title() for a in fig.axes] == ["DDPM: 10 steps", "DDIM: 2 steps"]
    plt.close(fig)
