"""Notebook 11's exercise: the checker accepts the reference (which agrees with core.distill), says "not
attempted" for the stub, and names the mistake for each planted wrong answer."""

import pytest
import torch

import ddim_lesson.core.distill as D
from ddim_lesson import NoiseSchedule
from ddim_lesson.course.exercises import CheckFailed, check_distill_target, solution
from ddim_lesson.course.exercises import distill as E


def test_reference_passes_and_agrees_with_the_library():
    assert solution("distill_target")
    sched = NoiseSchedule.linear(1000)
    teacher = E.gaussian_teacher(sched)
    z = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t, tm, tn in E.CASES:
        ts = [torch.full((5,), v) for v in (t, tm, tn)]
        _, z_next = D.teacher_two_steps(teacher, sched, z, *ts)
        lib = D.distill_target(z, z_next, D.abar_at(sched, ts[0]), D.abar_at(sched, ts[2]))
        assert torch.allclose(E.reference_distill_target(teacher, sched, z, t, tm, tn), lib, atol=1e-10)


def test_stub_is_not_attempted(capsys):
    def stub(*args):
        raise NotImplementedError

    assert check_distill_target(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


@pytest.mark.parametrize("kind", list(E.HINTS))
def test_each_planted_mistake_gets_its_hint(kind):
    def wrong(teacher, schedule, z_t, t, t_mid, t_next):
        return E._wrong(teacher, schedule, z_t, t, t_mid, t_next, kind)

    with pytest.raises(CheckFailed, match="Hint") as err:
        check_distill_target(wrong)
    assert E.HINTS[kind][:40] in str(err.value)


def test_an_answer_one_percent_off_fails():
    def off(teacher, schedule, z_t, t, t_mid, t_next):
        x = E.reference_distill_target(teacher, schedule, z_t, t, t_mid, t_next)
        return x * 1.01

    with pytest.raises(CheckFailed, match="x̃ is wrong"):
        check_distill_target(off)
