"""η is checked once where it enters, not again inside: once per sampler call (not once per step), once on the
command line before any work (not three times), and Table 1's config refuses η > 1 like every other entry.

check_eta is counted through the one function it calls (core.checks.check_float with the name "eta"), so a
check_eta imported into any module, under any binding, is counted; each count is also shown to fail on a planted
regression (the old per-step check, the old extra CLI check).
"""

from __future__ import annotations

import pytest
import torch

import ddim_lesson.cli.commands as commands
import ddim_lesson.cli.errors as errors
import ddim_lesson.cli.main as cli_main
import ddim_lesson.core.checks as checks
import ddim_lesson.core.samplers as samplers
from ddim_lesson import NoiseSchedule
from ddim_lesson.core.guidance import sdedit
from ddim_lesson.core.samplers import ddim_sample
from ddim_lesson.core.updates import ddim_coefs
from ddim_lesson.evaluate.table1 import Table1Config


@pytest.fixture
def eta_checks(monkeypatch):
    """A list that gets one entry per check of η (check_eta, wherever it was imported from)."""
    seen: list[float] = []
    real = checks.check_float

    def counting(name, value, *a, **kw):
        if name == "eta":
            seen.append(value)
        return real(name, value, *a, **kw)

    monkeypatch.setattr(checks, "check_float", counting)
    return seen


def linear_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.1 * x


def per_step_coefs(abar_t, abar_prev, eta):  # the old rule: ddim_coefs (which checks η) at every step
    return [ddim_coefs(a, ap, eta) for a, ap in zip(abar_t, abar_prev)]


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_a_sampler_call_checks_eta_once_whatever_the_steps(eta_checks, monkeypatch, eta):
    schedule, g = NoiseSchedule.linear(T=100), torch.Generator().manual_seed(0)
    for steps in (1, 10, 50):
        eta_checks.clear()
        ddim_sample(linear_model, schedule, torch.randn(3, 2), steps=steps, eta=eta, generator=g)
        assert len(eta_checks) == 1, steps
    eta_checks.clear()
    sdedit(linear_model, schedule, torch.randn(3, 2), strength=0.5, steps=10, eta=eta, generator=g)
    assert len(eta_checks) == 1
    with pytest.raises(ValueError, match=r"eta must be a finite number in \[0.0, 1.0\], got 1.5"):
        ddim_sample(linear_model, schedule, torch.randn(3, 2), steps=10, eta=1.5)  # still refused, at the entry
    monkeypatch.setattr(samplers, "ddim_call_coefs", per_step_coefs)  # planted: checked at every step again
    eta_checks.clear()
    ddim_sample(linear_model, schedule, torch.randn(3, 2), steps=10, eta=eta, generator=g)
    assert len(eta_checks) == 10  # the count above would have caught it (1 + S with the entry's check: 11 before)


def _sample(tmp_path, steps: int, n: int = 10, batch: int = 10) -> list[str]:
    return ["sample", "--model", "two-moons", "--steps", str(steps), "--eta", "0.5", "--n", str(n),
            "--batch-size", str(batch), "--out", str(tmp_path / "s.png"), "--device", "cpu", "--no-progress"]


def test_the_command_line_checks_eta_once_before_any_work(eta_checks, monkeypatch, tmp_path):
    before_work: list[int] = []
    real_load = commands.load_any

    def load(*a, **kw):
        before_work.append(len(eta_checks))  # checks made before the model is loaded
        return real_load(*a, **kw)

    monkeypatch.setattr(commands, "load_any", load)
    for steps, n, batch, batches in ((5, 10, 10, 1), (20, 10, 10, 1), (5, 10, 4, 3)):
        eta_checks.clear()
        assert cli_main.main(_sample(tmp_path, steps, n, batch)) == 0
        assert before_work[-1] == 1  # SampleArgs, built once: not check_common_args, validate_flags and cmd_sample
        assert len(eta_checks) == 1 + batches, (steps, batches)  # then once per sampler call, never per step

    real_common = errors.check_common_args

    def planted(args, pick=None):  # the old extra check of --eta in the shared flags
        real_common(args, pick)
        checks.check_eta(args.eta) if getattr(args, "eta", None) is not None else None

    monkeypatch.setattr(cli_main, "check_common_args", planted)
    eta_checks.clear()
    assert cli_main.main(_sample(tmp_path, 5)) == 0
    assert before_work[-1] == 2  # what the assert above refuses


def test_a_bad_eta_is_one_line_before_the_model_is_loaded(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(commands, "load_any", lambda *a, **kw: pytest.fail("loaded a model for a bad --eta"))
    assert cli_main.main(_sample(tmp_path, 5) + ["--eta", "1.5"]) == 2  # the last --eta wins
    assert capsys.readouterr().err.strip() == "ddim-lesson: error: eta must be a finite number in [0.0, 1.0], got 1.5"


def test_table1_config_refuses_eta_above_one_naming_value_and_range(tmp_path, capsys):
    assert Table1Config(etas=(0.0, 1.0)).etas == (0.0, 1.0)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=rf"eta must be a finite number in \[0.0, 1.0\], got {bad} \(one of etas"):
            Table1Config(etas=(0.0, bad))
    assert cli_main.main(["eval", "table1", "--etas", "0,1.25", "--n", "2", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ddim-lesson: error: eta must be a finite number in [0.0, 1.0], got 1.25 (one of etas (0.0, 1.25))"
