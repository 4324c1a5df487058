"""Exercise checkers: each accepts its reference solution, rejects plausible mistakes with a hint
that names the mistake, and says "not attempted yet" (returning False) for a stub. Notebook 02's checkers
(q_sample, the DDPM step) live in course/exercises/ddpm.py."""

from __future__ import annotations

import math

import pytest
import torch

from ddim_lesson import NoiseSchedule
from ddim_lesson.course import exercises as E


def _stub(*args):
    raise NotImplementedError


# -- reference solutions are checked against independent closed forms, not only the library ----
def test_reference_q_sample_closed_form():
    s = NoiseSchedule.linear(3, 0.1, 0.3)  # β = 0.1, 0.2, 0.3
    x0, noise = torch.ones(2, 1, 1, 1, dtype=torch.float64), torch.ones(2, 1, 1, 1, dtype=torch.float64)
    out = E.reference_q_sample(x0, torch.tensor([0, 2]), s, noise)
    abar2 = 0.9 * 0.8 * 0.7
    assert out[0].item() == pytest.approx(math.sqrt(0.9) + math.sqrt(0.1))
    assert out[1].item() == pytest.approx(math.sqrt(abar2) + math.sqrt(1 - abar2))


def test_reference_ddim_step_eta1_is_ddpm_posterior_on_consecutive_steps():
    # With η = 1 between consecutive timesteps, DDIM's σ² is DDPM's β̃ (DDIM eq. 16).
    s = NoiseSchedule.linear(1000)
    t = 400
    a_t, a_prev, beta = float(s.alphas_cumprod[t]), float(s.alphas_cumprod[t - 1]), float(s.betas[t])
    zeros, ones = torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    x_prev, _ = E.reference_ddim_step(zeros, zeros, a_t, a_prev, 1.0, ones)  # x_prev = σ·noise
    assert x_prev[0, 0].item() == pytest.approx(math.sqrt((1 - a_prev) / (1 - a_t) * beta), rel=1e-12)


# -- accept the reference, say "not attempted" for a stub -------------------------------------
@pytest.mark.parametrize("check, ref", [
    (E.check_q_sample, E.reference_q_sample),
    (E.check_ddpm_step, E.reference_ddpm_step),
    (E.check_ddim_step, E.reference_ddim_step),
])
def test_checker_accepts_reference_and_flags_stub(check, ref, capsys):
    assert check(ref) is True
    assert "Correct" in capsys.readouterr().out
    assert check(_stub) is False
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "NotImplementedError" in out


def test_check_q_sample_rejects_an_answer_that_overwrites_x0_in_place():
    # A real answer: right output, but the caller's x0 is gone after the call.
    def in_place(x0, t, schedule, noise):
        abar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
        return x0.mul_(abar.sqrt()).add_((1 - abar).sqrt() * noise)

    with pytest.raises(AssertionError, match=r"changed its input `x0` in place(.|\n)*new tensor"):
        E.check_q_sample(in_place)


def test_check_q_sample_rejects_a_view_that_only_works_for_one_channel():
    # A real answer: abar.view(B, C, 1, 1) is (B, 1, 1, 1) while C = 1, and fails for C = 3.
    def view_bc(x0, t, schedule, noise):
        B, C = x0.shape[:2]
        abar = schedule.alphas_cumprod[t].view(B, C, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    with pytest.raises(AssertionError, match=r"3-channel(.|\n)*RuntimeError(.|\n)*view\(-1, 1, 1, 1\)") as info:
        E.check_q_sample(view_bc)
    assert "line 3 of view_bc" in str(info.value)  # points at the learner's line
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback


def test_an_error_inside_the_learners_function_comes_back_as_a_hint():
    def typo(x0, t, schedule, noise):
        return math.sqrt(schedule.alphas_cumprod[t]) * x0  # math.sqrt of a (B,) tensor raises ValueError

    msg = r"your function raised ValueError: only one element(.|\n)*line 2 of typo"
    with pytest.raises(AssertionError, match=msg) as info:
        E.check_q_sample(typo)
    assert isinstance(info.value, E.LearnerError)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "t = a torch.int64 tensor of shape (6,)" in str(info.value)  # names the inputs


def test_check_invert_step_hints_at_sigma_when_the_eta_step_of_03_is_reused():
    # A real answer: notebook 03's η-aware step at η = 0 divides by 1-ᾱ_from = 0 at ᾱ_from = 1.
    def reuse_ddim_step(x, eps, abar_from, abar_to):
        return E.reference_ddim_step(x, eps, abar_from, abar_to, 0.0, torch.zeros_like(x))[0]

    with pytest.raises(AssertionError, match=r"ᾱ_from = 1(.|\n)*ZeroDivisionError(.|\n)*needs no σ"):
        E.check_invert_step(reuse_ddim_step)


def test_check_invert_step_hints_at_sigma_for_a_tensor_version_that_returns_nan():
    def tensor_sigma(x, eps, abar_from, abar_to):
        a, ap = torch.tensor(abar_from, dtype=x.dtype), torch.tensor(abar_to, dtype=x.dtype)
        sigma = 0.0 * ((1 - ap) / (1 - a)).sqrt()  # 0·inf = NaN at ᾱ_from = 1
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        return ap.sqrt() * x0 + (1 - ap - sigma**2).sqrt() * eps

    with pytest.raises(AssertionError, match=r"ᾱ_from = 1(.|\n)*NaN(.|\n)*needs no σ"):
        E.check_invert_step(tensor_sigma)


def test_every_checker_turns_a_learner_exception_into_a_hint():
    def broken(*args):
        return {}["no such key"]

    for check in (E.check_q_sample, E.check_ddpm_step, E.check_ddim_step, E.check_step_sigmas, E.check_slerp,
                  E.check_invert_step):
        with pytest.raises(E.LearnerError, match="your function raised KeyError"):
            check(broken)


# -- reject plausible mistakes, naming them -----------------------------------------------------
def _q_variance_not_std(x0, t, s, noise):
    a = s.alphas_cumprod[t].view(-1, 1, 1, 1)
    return a * x0 + (1 - a) * noise


def _q_one_step_alpha(x0, t, s, noise):
    a = (1 - s.betas[t]).view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _q_off_by_one(x0, t, s, noise):
    a = s.alphas_cumprod[(t - 1).clamp(min=0)].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _q_wrong_shape(x0, t, s, noise):
    return E.reference_q_sample(x0, t, s, noise)[:, 0]


@pytest.mark.parametrize("fn, hint", [
    (_q_variance_not_std, "square roots"),
    (_q_one_step_alpha, "cumulative product"),
    (_q_off_by_one, "off-by-one"),
    (_q_wrong_shape, "shape"),
])
def test_check_q_sample_rejects_with_hint(fn, hint):
    with pytest.raises(AssertionError, match=hint):
        E.check_q_sample(fn)


def _ddpm_beta_variance(x_t, eps, t, s, noise):
    beta, abar = float(s.betas[t]), float(s.alphas_cumprod[t])
    return (x_t - beta / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta) + math.sqrt(beta) * noise


def _ddpm_abar_in_mean(x_t, eps, t, s, noise):
    out = E.reference_ddpm_step(x_t, eps, t, s, noise)
    alpha, abar = 1 - float(s.betas[t]), float(s.alphas_cumprod[t])
    return out + (math.sqrt(alpha) / math.sqrt(abar) - 1) * (out - 0)  # rescales the whole step


def _ddpm_noise_at_t0(x_t, eps, t, s, noise):
    out = E.reference_ddpm_step(x_t, eps, t, s, noise)
    return out + (0.01 * noise if t == 0 else 0)


@pytest.mark.parametrize("fn, hint", [
    (_ddpm_beta_variance, r"√β_t"),
    (_ddpm_abar_in_mean, "mean is wrong"),
    (_ddpm_noise_at_t0, "last step"),
])
def test_check_ddpm_step_rejects_with_hint(fn, hint):
    with pytest.raises(AssertionError, match=hint):
        E.check_ddpm_step(fn)


def _ddim_no_sigma_in_direction(x_t, eps, a, ap, eta, noise):
    x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    sigma = eta * math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
    return math.sqrt(ap) * x0 + math.sqrt(1 - ap) * eps + sigma * noise, x0


def _ddim_sigma_squared(x_t, eps, a, ap, eta, noise):
    x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    sigma = eta * math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
    return math.sqrt(ap) * x0 + math.sqrt(1 - ap - sigma**2) * eps + sigma**2 * noise, x0


def _ddim_bad_x0(x_t, eps, a, ap, eta, noise):
    x_prev, x0 = E.reference_ddim_step(x_t, eps, a, ap, eta, noise)
    return x_prev, x_t - eps  # forgot the √ᾱ scalings in eq. 9


def _ddim_returns_only_x(x_t, eps, a, ap, eta, noise):
    return E.reference_ddim_step(x_t, eps, a, ap, eta, noise)[0]


@pytest.mark.parametrize("fn, hint", [
    (_ddim_no_sigma_in_direction, r"√\(1-ᾱ_prev-σ²\)"),
    (_ddim_sigma_squared, "σ²"),
    (_ddim_bad_x0, "eq. 9"),
    (_ddim_returns_only_x, r"tuple \(x_prev, x0_pred\)"),
])
def test_check_ddim_step_rejects_with_hint(fn, hint):
    with pytest.raises(AssertionError, match=hint):
        E.check_ddim_step(fn)


def test_ddim_checker_catches_eta_only_mistake_that_eta0_misses():
    # The "no σ in the direction term" mistake is exact at η = 0: only the η > 0 cases catch it.
    x = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, b = _ddim_no_sigma_in_direction(x, x, 0.4, 0.7, 0.0, x)[0], E.reference_ddim_step(x, x, 0.4, 0.7, 0.0, x)[0]
    assert torch.allclose(a, b)
    assert any(eta > 0 for _, _, eta in E.DDIM_CASES) and any(ap == 1.0 for _, ap, _ in E.DDIM_CASES)


# -- solutions and environment ---------------------------------------------------------------
def test_solution_is_the_one_way_to_see_a_solution(capsys):
    """solution(name) checks quietly and shows nothing; show=True prints the reference's source; an unknown
    name is refused naming the allowed ones; no second way (show_solution) remains on the surface."""
    assert E.solution("ddim_step") is True
    out = capsys.readouterr().out
    assert "def reference_ddim_step" not in out and "solution('ddim_step', show=True)" in out
    assert E.solution("heun_step", show=True) is True
    assert "def reference_heun_step" in capsys.readouterr().out
    with pytest.raises(ValueError, match="allowed: q_sample, ddpm_step, ddim_step"):
        E.solution("nope")
    from ddim_lesson.course.exercises import solvers

    assert not hasattr(E, "show_solution") and not hasattr(solvers, "show_solution")


def test_check_environment_reports_and_fails_with_fix(monkeypatch, tmp_path, capsys):
    import sys

    pretrained = sys.modules["ddim_lesson.store.pretrained"]  # the package attribute of that name is the function
    info = E.check_environment()
    assert {"torch", "device", "weights", "samples", "dataset"} <= set(info)
    assert info["samples"] is not None
    assert "torch" in capsys.readouterr().out
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)  # no weights here
    with pytest.raises(RuntimeError, match="pip install -e"):
        E.check_environment(need=("weights",))
    with pytest.raises(ValueError, match="unknown requirement"):
        E.check_environment(need=("gpu",))


def test_fashion_mnist_location(monkeypatch, tmp_path):
    from ddim_lesson.store import data  # the one search (store.data); exercises re-exports its look-only half
    from ddim_lesson.store.data import IDX_FILES

    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv("DDIM_LESSON_DATA", raising=False)
    assert E.fashion_mnist_location() is None
    for f in IDX_FILES:
        (tmp_path / (f + ".gz")).write_bytes(b"")
    monkeypatch.setenv("DDIM_LESSON_DATA", str(tmp_path))
    assert E.fashion_mnist_location() == tmp_path


def test_check_environment_names_the_fix_for_an_old_torch(monkeypatch):
    import torch

    from ddim_lesson.course.exercises import check_environment

    monkeypatch.setattr(torch, "__version__", "2.1.2+cpu")
    with pytest.raises(RuntimeError, match=r"torch 2\.1\.2\+cpu is too old.*torch>=2\.2"):
        check_environment()
