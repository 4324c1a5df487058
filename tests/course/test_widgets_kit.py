"""The explorers' shared kit: the "computing" state is shown while a slider's work runs, and cleared after it,
on success and on every kind of error; a cached setting shows at once, without it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import pytest
import torch

from ddim_lesson import NoiseSchedule
from ddim_lesson.course.widgets import interpolation_explorer, kit, sampler_explorer


@dataclass
class Toy:
    """The smallest explorer: one slider, an image, a readout, a cache; ``seen`` records the state inside compute."""

    slider: w.IntSlider
    image: w.Image
    readout: w.HTML
    cache: kit.RunCache
    seen: list[tuple[str, str]]
    last: Any = None
    update: Any = None


def toy(fail: dict[int, Exception] | None = None, show_errors: bool = False) -> Toy:
    ex = Toy(w.IntSlider(value=0, min=0, max=9), w.Image(format="png"), w.HTML(), kit.RunCache(), [])

    def compute(k: int) -> tuple[int, bytes]:
        ex.seen.append((ex.readout.value, ex.image.layout.opacity))  # the state while the work runs
        if fail and k in fail:
            raise fail[k]
        return k * 10, bytes([k])

    kit.connect(ex, (ex.slider,), lambda: int(ex.slider.value), compute, lambda run, cached: f"run {run}",
                show_errors=show_errors)
    return ex


def computing(state: tuple[str, str]) -> bool:
    return state == (kit.COMPUTING, kit.DIMMED)


def assert_cleared(ex: Toy) -> None:
    assert ex.image.layout.opacity == "1" and "computing" not in ex.readout.value


def test_state_is_set_during_the_work_and_cleared_after() -> None:
    ex = toy()
    assert len(ex.seen) == 1 and computing(ex.seen[0])  # the first render too
    assert_cleared(ex)
    ex.slider.value = 3
    assert computing(ex.seen[-1]) and ex.readout.value == "run 30" and ex.image.value == bytes([3])
    assert_cleared(ex)
    ex.slider.value = 0  # cached: shown at once, no work, no computing state
    assert len(ex.seen) == 2 and ex.readout.value == "run 0"
    assert_cleared(ex)


@pytest.mark.parametrize("show_errors", [False, True])
@pytest.mark.parametrize("error", [ValueError("steps=0 must be in [1, 50]"), RuntimeError("boom <b>")])
def test_state_is_cleared_on_an_error(show_errors: bool, error: Exception) -> None:
    ex = toy({5: error}, show_errors)
    shown = show_errors and isinstance(error, ValueError)
    if shown:
        ex.slider.value = 5
    else:
        with pytest.raises(type(error)):
            ex.slider.value = 5
    assert computing(ex.seen[-1])
    assert_cleared(ex)
    assert "error:" in ex.readout.value and "<b>" not in ex.readout.value  # the message, escaped
    assert ex.image.value == bytes([0])  # the previous image stays; the readout says why it is not the new one


def test_a_connect_without_the_state_fails_these_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the state set only after the work (as a late update would) is not seen by the work."""
    real = kit.show_computing
    monkeypatch.setattr(kit, "show_computing", lambda ex, on: real(ex, False))
    ex = toy()
    ex.slider.value = 4
    assert not computing(ex.seen[-1])


class Zero(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_every_kit_explorer_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler and interpolation explorers: their model runs while the state is on."""
    schedule = NoiseSchedule.linear(T=100)
    seen: list[bool] = []
    state: dict[str, Any] = {}
    real = kit.show_computing

    def spy(ex: Any, on: bool) -> None:
        state["ex"] = ex
        real(ex, on)

    class Watched(Zero):
        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            ex = state.get("ex")
            seen.append(ex is not None and computing((ex.readout.value, ex.image.layout.opacity)))
            return super().forward(x, t)

    monkeypatch.setattr(kit, "show_computing", spy)
    model = Watched()
    sx = sampler_explorer(model, schedule, n=2, shape=(1, 8, 8), steps=2, max_steps=5)
    sx.steps.value = 3
    ix = interpolation_explorer(model, schedule, shape=(1, 8, 8), steps=2)
    ix.alpha.value = 0.25
    assert seen and all(seen), seen
    for ex in (sx, ix):
        assert ex.image.layout.opacity == "1" and "computing" not in ex.readout.value
