"""What the command line says about a model: ``--model``'s help, read from the registry of shipped models, and a
one-line hint on stderr when a model has had too little training for its data.

The rule of the hint: a shipped model trained from scratch is the recipe for its dataset, so a model trained on a
dataset for fewer than :data:`UNDERTRAINED_FRACTION` of the steps of the longest such model on that dataset (its
own steps plus those of a shipped model it started from, ``--init-from``) is under-trained. ``two-moons`` was
trained for 8000 steps, so a 200-step run (2.5 %) gets the hint, and so does one of 1999 steps; 2000 do not.
A dataset no shipped model was trained on has no recipe and no hint, nor has a distilled student (its card's
``steps`` are sampling steps) or a model started from a checkpoint path (its earlier steps are not known).
"""

from __future__ import annotations

import json
from typing import Any

from ..store.pretrained import PRETRAINED, model_help, weights_path

UNDERTRAINED_FRACTION = 0.25
__all__ = ["model_help", "recipe", "refuse_velocity_model", "student_steps_hint", "undertrained_hint"]


def _cards() -> dict[str, dict[str, Any]]:
    """The JSON card of each shipped model present (a model missing from this install is left out)."""
    cards = {}
    for name in PRETRAINED:
        try:
            cards[name] = json.loads(weights_path(name).with_suffix(".json").read_text())
        except (OSError, ValueError):
            continue
    return cards


def _trained_steps(meta: dict[str, Any], cards: dict[str, dict[str, Any]]) -> int | None:
    """Training steps behind a model: its own plus those of the shipped model it started from; None if unknown."""
    steps, config = meta.get("steps"), meta.get("train_config")
    if "sampling" in meta or not isinstance(steps, int) or not isinstance(config, dict):
        return None  # a distilled student, or not written by ddim-lesson train
    start = config.get("init_from") or ""
    if not start:
        return steps
    before = _trained_steps(cards[start], {}) if start in cards else None  # one level: shipped models start once
    return None if before is None else steps + before


def refuse_velocity_model(meta: dict[str, Any], spec: str) -> None:
    """ValueError for a model trained with the flow-matching objective: it predicts a velocity, not ε, so the
    ε-model samplers behind ``sample`` and ``invert`` would run it without an error and draw noise."""
    config = meta.get("train_config")
    if isinstance(config, dict) and config.get("objective", "eps") != "eps":
        raise ValueError(f"{spec} was trained with objective {config['objective']!r} (a velocity model v(x_s, s)); "
                         "sample and invert run eps-model samplers: sample it with ddim_lesson.flow_sample "
                         "(notebook 10)")


def recipe(dataset: str | None, cards: dict[str, dict[str, Any]] | None = None) -> tuple[str, int] | None:
    """(name, steps) of the longest-trained shipped model on ``dataset`` trained from scratch (the one named
    after the dataset among equals): the recipe a model of it is measured against; None when there is none."""
    cards = _cards() if cards is None else cards
    found = [(m["steps"], name == dataset, name) for name, m in cards.items() if m.get("dataset") == dataset
             and not ((m.get("train_config") or {}).get("init_from") or "") and _trained_steps(m, {})]
    if not found:
        return None
    steps, _, name = max(found)
    return name, steps


def undertrained_hint(meta: dict[str, Any], spec: str, cards: dict[str, dict[str, Any]] | None = None) -> str | None:
    """One line saying that model ``spec`` (card ``meta``) is under-trained for its dataset, or None (see the
    module's rule): the steps it had, the recipe's, and what to expect."""
    cards = _cards() if cards is None else cards
    dataset, steps = meta.get("dataset"), _trained_steps(meta, cards)
    ref = recipe(dataset, cards)
    if ref is None or steps is None or steps >= UNDERTRAINED_FRACTION * ref[1]:
        return None
    name, ref_steps = ref
    return (f"hint: {spec} was trained for {steps} steps, {100 * steps / ref_steps:.1f} % of the {ref_steps} of the "
            f"shipped {name} (under {UNDERTRAINED_FRACTION:.0%} counts as a smoke test): expect samples that do not "
            f"look like {dataset} yet; train longer (--steps {ref_steps}) or sample --model {name}")


def student_steps_hint(meta: dict[str, Any], spec: str, steps: int, spacing: str) -> str | None:
    """One line when a distilled student (its card has ``"sampling": {"steps": k, "spacing": ...}``) is sampled on
    another grid than the one it was distilled for, naming the flags that match its card; None otherwise."""
    sampling = meta.get("sampling")
    if not isinstance(sampling, dict) or "steps" not in sampling:
        return None
    k, grid = int(sampling["steps"]), str(sampling.get("spacing", spacing))
    if (steps, spacing) == (k, grid):
        return None
    return (f"hint: {spec} is a distilled student trained for {k} DDIM steps on the {grid} grid (its card's "
            f"\"sampling\"); these are {steps} {spacing} steps: for the grid it learned, pass --steps {k} "
            f"--spacing {grid}")

