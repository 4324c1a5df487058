"""course.widgets.distill: notebook 11's explorer samples what it says (checked against independent sampler calls
from an x_T drawn here), counts k model calls per sampler, scores with evaluate.moons, caches, and refuses bad
settings by name; a teacher planted with 2k steps fails the same check."""

from __future__ import annotations

import pytest
import torch

import ddim_lesson as dl
from ddim_lesson.core.distill import EpsFromV
from ddim_lesson.course.widgets import distill as D
from ddim_lesson.course.widgets import distill_explorer, distill_run, scatter_tensor
from ddim_lesson.evaluate.moons import energy_distance, near_fraction
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser
from ddim_lesson.store.data import toy_2d

SCHED = dl.NoiseSchedule.linear(1000)
KS = (8, 4, 2, 1)
N = 200


def mlp(seed: int) -> MLPDenoiser:
    torch.manual_seed(seed)
    return MLPDenoiser(MLPConfig(hidden=16, depth=1)).eval()


@pytest.fixture(scope="module")
def models() -> tuple[dict[int, torch.nn.Module], torch.nn.Module, torch.Tensor]:
    """Tiny stand-ins: an ε-MLP teacher, one v-MLP student per round (each its own weights), fresh data (300, 2)."""
    students = {k: EpsFromV(mlp(10 + k), SCHED).eval() for k in KS}
    ref = toy_2d("two-moons", 300, torch.Generator().manual_seed(5))
    return students, mlp(1), ref


def expected(students, teacher, k: int, method: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's and the teacher's samples, written out here: x_T from the seeding rule, one sampler call each."""
    x_T = torch.randn((N, 2), generator=torch.Generator().manual_seed(seed))
    xs = dl.ddim_sample(students[k], SCHED, x_T, steps=k, clip_x0=False)
    if method == "DDIM":
        xt = dl.ddim_sample(teacher, SCHED, x_T, steps=k, clip_x0=False)
    else:
        solver = {"DPM-Solver++ 2M": "dpmpp_2m", "DPM-Solver++ 3M": "dpmpp_3m_exact"}[method]
        xt = dl.ode_sample(teacher, SCHED, x_T, steps=k, solver=solver)
    return xs, xt


def mismatches(run: D.DistillRun, students, teacher, ref: torch.Tensor) -> list[str]:
    """What in ``run`` differs from the independent reference: samples, calls, both measures."""
    xs, xt = expected(students, teacher, run.k, run.method, run.seed)
    bad = [name for name, ok in (
        ("student samples", torch.equal(run.student, xs)), ("teacher samples", torch.equal(run.teacher, xt)),
        ("student calls", run.student_calls == run.k), ("teacher calls", run.teacher_calls == run.k),
        ("student near", run.student_near == near_fraction(xs)),
        ("teacher near", run.teacher_near == near_fraction(xt)),
        ("student energy", abs(run.student_energy - energy_distance(xs, ref)) < 1e-12),
        ("teacher energy", abs(run.teacher_energy - energy_distance(xt, ref)) < 1e-12),
    ) if not ok]
    return bad


@pytest.mark.parametrize("method", list(D.TEACHER_SAMPLERS))
def test_the_run_is_the_samplers_on_one_x_T_with_k_calls_each(models, counting, method: str) -> None:
    students, teacher, ref = models
    for k in (8, 4, 1):
        s, t = counting(students[k]), counting(teacher)
        run = distill_run({**students, k: s}, t, SCHED, k, method, seed=3, n=N, ref=ref)
        assert s.calls == k and t.calls == k, (s.calls, t.calls)  # counted outside the run too
        assert mismatches(run, students, teacher, ref) == [], (method, k)
        assert run.student_calls == run.teacher_calls == k and 0 <= run.student_near <= 1
    xt8 = {m: distill_run(students, teacher, SCHED, 8, m, seed=3, n=N, ref=ref).teacher for m in D.TEACHER_SAMPLERS}
    assert not torch.equal(xt8["DDIM"], xt8["DPM-Solver++ 2M"]) and not torch.equal(xt8["DPM-Solver++ 2M"],
                                                                                       xt8["DPM-Solver++ 3M"])


def test_a_teacher_planted_with_2k_steps_fails_the_check(models, monkeypatch) -> None:
    students, teacher, ref = models
    real = D.ode_sample
    monkeypatch.setattr(D, "ode_sample", lambda *a, steps, **kw: real(*a, steps=2 * steps, **kw))
    run = distill_run(students, teacher, SCHED, 4, "DPM-Solver++ 2M", seed=3, n=N, ref=ref)
    assert {"teacher samples", "teacher calls"} <= set(mismatches(run, students, teacher, ref))
    monkeypatch.undo()  # and a student sampled from another seed's x_T
    planted = distill_run(students, teacher, SCHED, 4, "DDIM", seed=4, n=N, ref=ref)
    assert "student samples" in mismatches(D.DistillRun(**{**planted.__dict__, "seed": 3}), students, teacher, ref)


def test_bad_k_or_method_is_refused_by_name(models) -> None:
    students, teacher, ref = models
    with pytest.raises(ValueError, match=r"k 3 .*allowed: 8, 4, 2, 1"):
        distill_run(students, teacher, SCHED, 3, "DDIM", seed=0, n=N, ref=ref)
    with pytest.raises(ValueError, match=r"k 4.0 .*allowed"):
        distill_run(students, teacher, SCHED, 4.0, "DDIM", seed=0, n=N, ref=ref)
    with pytest.raises(ValueError, match=r"'heun'.*'DDIM', 'DPM-Solver\+\+ 2M', 'DPM-Solver\+\+ 3M'"):
        distill_run(students, teacher, SCHED, 4, "heun", seed=0, n=N, ref=ref)
    with pytest.raises(ValueError, match="k 16"):
        distill_explorer(students, teacher, SCHED, k=16, n=N, ref=ref)
    with pytest.raises(ValueError, match="'dpmpp_2m'"):
        distill_explorer(students, teacher, SCHED, method="dpmpp_2m", n=N, ref=ref)


def test_the_explorer_draws_one_k_then_caches_each_setting(models, counting) -> None:
    students, teacher, ref = models
    cs, ct = {k: counting(m) for k, m in students.items()}, counting(teacher)
    ex = distill_explorer(cs, ct, SCHED, k=4, method="DPM-Solver++ 3M", seed=3, n=N, ref=ref)
    calls = lambda: (sum(m.calls for m in cs.values()), ct.calls)  # noqa: E731
    assert calls() == (4, 4) and ex.image.value[:4] == b"\x89PNG" and ex.k.options == KS
    first = ex.last
    assert mismatches(first, students, teacher, ref) == [] and "k = 4" in ex.readout.value
    assert f"student near {first.student_near:.3f}" in ex.readout.value and "computed" in ex.readout.value
    ex.k.value = 1
    assert calls() == (5, 5) and ex.last.k == 1
    ex.method.value, ex.k.value = "DDIM", 4  # two new settings: (1, DDIM), then (4, DDIM)
    assert calls() == (10, 10) and ex.last.method == "DDIM" and not torch.equal(ex.last.teacher, first.teacher)
    ex.method.value = "DPM-Solver++ 3M"  # back to the first setting: the same object, no model call
    assert ex.last is first and calls() == (10, 10) and "from cache" in ex.readout.value
    ex.seed.value = 4
    assert not torch.equal(ex.last.student, first.student) and mismatches(ex.last, students, teacher, ref) == []


def test_scatter_puts_each_point_at_its_pixel_and_counts_those_off_the_panel() -> None:
    size, lim = 40, 2.0
    pts = torch.tensor([[0.05, 1.5], [-1.95, -1.95], [5.0, 0.0], [0.0, -2.5]])  # two inside, two off
    img, off = scatter_tensor(pts, None, lim=lim, size=size)
    assert off == 2 and img.shape == (3, size, size)
    blue = torch.tensor(D.BLUE).view(3, 1)
    for x, y in pts[:2].tolist():  # column from x; row from y, counted from the top (y up)
        col, row = int((x + lim) / (2 * lim) * size), size - 1 - int((y + lim) / (2 * lim) * size)
        assert torch.equal(img[:, row, col], blue.view(3)), (x, y)
    assert int((img == blue.view(3, 1, 1)).all(0).sum()) == 2  # nothing else is drawn blue
    col, row_down = int((0.05 + lim) / (2 * lim) * size), int((1.5 + lim) / (2 * lim) * size)
    assert not torch.equal(img[:, row_down, col], blue.view(3))  # the planted y-down row holds no point
