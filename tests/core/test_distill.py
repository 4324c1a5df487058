"""Progressive distillation's maths (core.distill) against closed forms, with planted bugs.

The reference for the target x̃ is its defining property, checked with the library's own scalar
``ddim_step``: ONE student DDIM step from z_t with x0 = x̃ lands where TWO teacher steps land. On
unit-variance Gaussian data the exact teacher's two steps, and so x̃, have a closed form in angles
(α = cos θ, σ = sin θ); on a point mass every DDIM step is exact, so x̃ is the point itself.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import ddim_lesson.core.distill as D
from ddim_lesson import NoiseSchedule, ddim_sample, ddim_step, ddim_timesteps

SCHED = NoiseSchedule.linear(1000)


class GaussianEps(nn.Module):
    """The exact ε-predictor for data N(m, s² I): x̂0 = m + α s²/(α² s² + σ²) (z - α m)."""

    def __init__(self, schedule: NoiseSchedule, m: float, s: float) -> None:
        super().__init__()
        self.schedule, self.m, self.s = schedule, m, s

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = D._col(self.schedule.alphas_cumprod[t].sqrt(), z)
        sig = D._col((1 - self.schedule.alphas_cumprod[t]).sqrt(), z)
        x0 = self.m + a * self.s**2 / (a**2 * self.s**2 + sig**2) * (z - a * self.m)
        return (z - a * x0) / sig


class PointMassV(nn.Module):
    """The exact v-predictor for data at the single point m: v = (α z - m)/σ."""

    def __init__(self, schedule: NoiseSchedule, m: torch.Tensor) -> None:
        super().__init__()
        self.schedule, self.m = schedule, m

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return D.v_from_x0(z, self.m.expand_as(z), self.schedule.alphas_cumprod[t])


def _levels(t, t_mid, t_next):
    return D.abar_at(SCHED, t), D.abar_at(SCHED, t_mid), D.abar_at(SCHED, t_next)


# -- the grid -------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1000, 999, 1024, 37])
def test_trailing_grids_nest_for_every_T(T):
    k = 1
    while 2 * k <= T:
        t, t_mid, t_next = D.distill_grid(NoiseSchedule.linear(T), k, "trailing")
        assert torch.equal(t, ddim_timesteps(T, k, "trailing")) and t[0] == T - 1
        assert torch.equal(torch.stack([t, t_mid], 1).flatten(), ddim_timesteps(T, 2 * k, "trailing"))
        assert (t > t_mid).all() and (t_mid > t_next).all() and t_next[-1] == -1
        k *= 2


@pytest.mark.parametrize("spacing", ["leading", "linspace"])
def test_grids_that_do_not_nest_are_refused(spacing):
    with pytest.raises(ValueError, match="trailing"):
        D.distill_grid(SCHED, 32, spacing)


@pytest.mark.parametrize("bad", [0, 501, 2.0])
def test_bad_step_counts_are_refused(bad):
    with pytest.raises(ValueError, match="allowed steps: 1..500"):
        D.distill_grid(SCHED, bad)
    with pytest.raises(ValueError, match="NoiseSchedule"):  # T alone cannot say where a cosine grid starts
        D.distill_grid(1000, 4)


def visited(schedule: NoiseSchedule, steps: int) -> list[int]:
    """The timesteps ddim_sample visits on ``schedule`` with ``steps`` steps (trailing), read off a recording model."""
    seen: list[int] = []

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(int(t[0]))
        return torch.zeros_like(x_t)

    ddim_sample(model, schedule, torch.randn(1, 2, generator=torch.Generator().manual_seed(0)), steps=steps,
                eta=0.0, spacing="trailing", clip_x0=False)
    return seen


def old_grid(T: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """distill_grid before the fix, written out: the trailing grids of T alone, whatever the schedule."""
    student, teacher = ddim_timesteps(T, k, "trailing"), ddim_timesteps(T, 2 * k, "trailing")
    return student, teacher[1::2], torch.cat([student[1:], torch.tensor([-1])])


@pytest.mark.parametrize("k", [1, 2, 4, 16])
def test_the_grid_is_the_one_the_teachers_ddim_visits(k):
    """A cosine teacher's DDIM starts at its own first timestep (sampling_T - 1 = 994 at T = 1000), so the grid it
    is distilled on must too: the teacher's 2k-step DDIM visits t, t_mid alternately, the student's k-step DDIM t.
    Under the linear schedule (every shipped teacher) nothing changes from the old grid of T alone."""
    cosine = NoiseSchedule.cosine(1000)
    assert cosine.sampling_T < cosine.T
    for schedule in (cosine, SCHED):
        t, t_mid, t_next = D.distill_grid(schedule, k)
        assert torch.stack([t, t_mid], 1).flatten().tolist() == visited(schedule, 2 * k)
        assert t.tolist() == visited(schedule, k) and t[0] == schedule.sampling_T - 1
    linear_old = old_grid(1000, k)
    assert all(torch.equal(a, b) for a, b in zip(D.distill_grid(SCHED, k), linear_old, strict=True))
    t_old, mid_old, _ = old_grid(1000, k)  # the planted bug: the old grid on the cosine teacher
    assert t_old[0] == 999 and torch.stack([t_old, mid_old], 1).flatten().tolist() != visited(cosine, 2 * k)


def test_abar_at_is_one_at_minus_one_and_refuses_out_of_range():
    t = torch.tensor([-1, 0, 999])
    assert D.abar_at(SCHED, t).tolist() == [1.0, SCHED.abar(0), SCHED.abar(999)]
    with pytest.raises(ValueError, match=r"\[-1, 999\]"):
        D.abar_at(SCHED, torch.tensor([1000]))


# -- the target ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 8, 32])
def test_one_step_with_the_target_lands_where_two_teacher_steps_land(k):
    """Gaussian data N(0.3, 0.5²), exact teacher: checked per sample with the scalar ddim_step."""
    teacher = GaussianEps(SCHED, 0.3, 0.5)
    t, t_mid, t_next = (x.repeat_interleave(2) for x in D.distill_grid(SCHED, k))  # (2k,)
    z = torch.randn(t.numel(), 3, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    _, z_next = D.teacher_two_steps(teacher, SCHED, z, t, t_mid, t_next)
    a_t, _, a_next = _levels(t, t_mid, t_next)
    x_tilde = D.distill_target(z, z_next, a_t, a_next)
    for i in range(t.numel()):
        tt, tm, tn = int(t[i]), int(t_mid[i]), int(t_next[i])
        zm, _ = ddim_step(z[i:i + 1], teacher(z[i:i + 1], t[i:i + 1]), SCHED.abar(tt), SCHED.abar(tm))
        zn, _ = ddim_step(zm, teacher(zm, t_mid[i:i + 1]), SCHED.abar(tm), SCHED.abar(tn))
        assert torch.allclose(z_next[i:i + 1], zn, atol=1e-9)  # the batched steps are the library's
        eps_student = (z[i] - math.sqrt(SCHED.abar(tt)) * x_tilde[i]) / math.sqrt(1 - SCHED.abar(tt))
        landed, x0 = ddim_step(z[i:i + 1], eps_student[None], SCHED.abar(tt), SCHED.abar(tn))
        assert torch.allclose(landed, zn, atol=1e-7), (k, i, float((landed - zn).abs().max()))
        assert torch.allclose(x0[0], x_tilde[i], atol=1e-7)


def _unit_gaussian_target(t, t_mid, t_next, z):
    """Closed form for data N(0, I): x̂0 = α z, a DDIM step multiplies z by cos(θ - θ'), so
    x̃ = z (sin θ cos(θ-θ') cos(θ'-θ'') - sin θ'') / sin(θ - θ'')."""
    th, thm, thn = (torch.acos(D.abar_at(SCHED, x).sqrt()) for x in (t, t_mid, t_next))
    c = (torch.sin(th) * torch.cos(th - thm) * torch.cos(thm - thn) - torch.sin(thn)) / torch.sin(th - thn)
    return c[:, None] * z


def test_target_on_unit_gaussian_data_matches_the_closed_form():
    teacher = GaussianEps(SCHED, 0.0, 1.0)
    t, t_mid, t_next = D.distill_grid(SCHED, 16)
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, z_next = D.teacher_two_steps(teacher, SCHED, z, t, t_mid, t_next)
    a_t, _, a_next = _levels(t, t_mid, t_next)
    want = _unit_gaussian_target(t, t_mid, t_next, z)
    assert torch.allclose(D.distill_target(z, z_next, a_t, a_next), want, atol=1e-9)
    # planted bugs: σ''/σ replaced by σ/σ'' or by α''/α; one teacher step (z_mid) instead of two
    z_mid, _ = D.teacher_two_steps(teacher, SCHED, z, t, t_mid, t_next)
    s_t, s_n = (1 - a_t).sqrt(), (1 - a_next).sqrt()
    for ratio in (s_t / s_n, (a_next / a_t).sqrt()):
        wrong = (z_next - ratio[:, None] * z) / (a_next.sqrt() - ratio * a_t.sqrt())[:, None]
        assert (wrong - want)[:-1].abs().max() > 1e-3  # the last row goes to σ'' = 0, where σ/σ'' is infinite
    assert (D.distill_target(z, z_mid, a_t, a_next) - want).abs().max() > 1e-3  # the right one: 1e-9


def test_point_mass_target_is_the_point():
    m = torch.tensor([0.7, -1.2], dtype=torch.float64)
    teacher = D.EpsFromV(PointMassV(SCHED, m), SCHED)
    t, t_mid, t_next = D.distill_grid(SCHED, 4)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _, z_next = D.teacher_two_steps(teacher, SCHED, z, t, t_mid, t_next)
    a_t, _, a_next = _levels(t, t_mid, t_next)
    assert torch.allclose(D.distill_target(z, z_next, a_t, a_next), m.expand(4, 2), atol=1e-9)


# -- the loss at step 0 of a round ------------------------------------------------------------
def _loss(teacher, student, x0, k=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return float(D.distill_loss(student, teacher, SCHED, x0, D.distill_grid(SCHED, k), g))


def test_student_copied_from_an_exact_teacher_has_zero_loss_and_planted_bugs_do_not(monkeypatch):
    m = torch.tensor([0.7, -1.2], dtype=torch.float64)
    net = PointMassV(SCHED, m)
    x0 = m.expand(256, 2).clone()
    right = _loss(D.EpsFromV(net, SCHED), net, x0)
    assert right < 1e-18, right
    true_target = D.distill_target
    monkeypatch.setattr(D, "distill_target", lambda z, zn, a, an: true_target(z, zn, a, an * 0.999))  # wrong σ''
    assert _loss(D.EpsFromV(net, SCHED), net, x0) > 1e-4
    monkeypatch.setattr(D, "distill_target", true_target)
    two = D.teacher_two_steps
    monkeypatch.setattr(D, "teacher_two_steps", lambda *a: (two(*a)[0], two(*a)[0]))  # one teacher step
    assert _loss(D.EpsFromV(net, SCHED), net, x0) > 1e-2


def test_unit_gaussian_loss_of_a_copied_student_is_the_gap_between_one_step_and_two():
    """Data N(0, I): two exact DDIM steps are not one, so a student equal to the teacher has a loss, and
    it is the closed-form gap (v-space): mean over steps of ((α ẑ - c z)/σ - v(z))², z ~ N(0, I)."""
    g = GaussianEps(SCHED, 0.0, 1.0)

    class VOfTeacher(nn.Module):
        def forward(self, z, t):
            a = SCHED.alphas_cumprod[t]
            return D.v_from_x0(z, (z - D._col((1 - a).sqrt(), z) * g(z, t)) / D._col(a.sqrt(), z), a)

    x0 = torch.randn(20000, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    k = 4
    measured = _loss(g, VOfTeacher(), x0, k=k)
    t, t_mid, t_next = D.distill_grid(SCHED, k)
    a = D.abar_at(SCHED, t)
    c = _unit_gaussian_target(t, t_mid, t_next, torch.ones(k, 1, dtype=torch.float64))[:, 0]
    gap = ((c - a.sqrt()) / (1 - a).sqrt()) ** 2  # ṽ = (α - c) z/σ; the teacher's v = (α z - x̂0)/σ = 0
    assert measured == pytest.approx(float(gap.mean()), rel=0.05)
    assert measured > 1e-3


# -- the parameterisation ---------------------------------------------------------------------
def test_v_conversions_round_trip():
    z, x0 = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    a = SCHED.alphas_cumprod[torch.tensor([0, 10, 500, 900, 999])]
    v = D.v_from_x0(z, x0, a)
    assert torch.allclose(D.x0_from_v(z, v, a), x0, atol=1e-9)
    eps = D.eps_from_v(z, v, a)
    assert torch.allclose(D._col(a.sqrt(), z) * x0 + D._col((1 - a).sqrt(), z) * eps, z, atol=1e-9)


def test_an_error_in_eps_costs_157x_in_x0_at_t_999_and_an_error_in_v_costs_at_most_1x():
    a = SCHED.alphas_cumprod[999]
    z, x0 = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    v = D.v_from_x0(z, x0, a[None])
    eps = D.eps_from_v(z, v, a[None])
    err_eps = ((z - (1 - a).sqrt() * (eps + 1e-3)) / a.sqrt() - x0).abs().item() / 1e-3
    err_v = (D.x0_from_v(z, v + 1e-3, a[None]) - x0).abs().item() / 1e-3
    assert 150 < err_eps < 160 and err_v <= 1.0


def test_a_v_student_samples_through_ddim_sample_even_at_one_step():
    m = torch.tensor([[0.7, -0.4]])
    student = D.EpsFromV(PointMassV(SCHED, m), SCHED)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(5))
    for clip in (False, True):
        x = ddim_sample(student, SCHED, x_T, steps=1, clip_x0=clip)
        assert (x - m).abs().max() < 1e-3, float((x - m).abs().max())  # float32: z/α at t = 999 costs a little
