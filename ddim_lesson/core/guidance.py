"""Classifier-free guidance and SDEdit: two ways to steer a DDIM sampler without changing it.

``cfg(model, y, scale)`` turns a class-conditional model ``model(x_t, t, y)`` into a plain
``model(x_t, t) -> eps``, so every sampler, solver and inversion composes with it unchanged.

Guidance-scale conventions (one network, labels y and ∅ = "no label" = ``num_classes``):

    ours (and diffusers' ``guidance_scale``):  ε = ε(x,∅) + scale·(ε(x,y) − ε(x,∅))
    Ho & Salimans 2022, eq. 6:                  ε = (1 + w)·ε(x,y) − w·ε(x,∅)    so  scale = 1 + w

    scale 0 (w = -1): the unconditional model   scale 1 (w = 0): the conditional model
    scale > 1 (w > 0): guided, past the conditional model, away from the unconditional one

``sdedit`` (Meng et al. 2022) edits an image by noising it part of the way with q(x_t | x_0)
and running DDIM back from there: the higher the strength, the more the model redraws.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import check_float, check_int, check_label, check_model_input
from .forward import q_sample, randn_like_on
from .samplers import Model, denoise_loop, last_sample, step_plan
from .schedules import NoiseSchedule, ddim_timesteps
from .updates import ddim_call_coefs, ddim_update

ConditionalModel = nn.Module  # called as model(x_t, t, y) with y: (B,) int64


class Guided(nn.Module):
    """``model(x_t, t) -> eps`` with classifier-free guidance at a fixed label and scale.

    Each call is one forward pass of the wrapped model on a batch of 2B: the B inputs with
    their labels y, and the same B inputs with the "no label" token. x_t: (B, ...), t: (B,).
    """

    def __init__(self, model: ConditionalModel, y: torch.Tensor | int, scale: float, num_classes: int) -> None:
        super().__init__()
        self.model, self.scale, self.num_classes = model, scale, num_classes
        self.y = y

    @property
    def config(self) -> object:
        """The wrapped model's config, so shape helpers (``evaluate.generate.sample_shape``) see through the wrapper."""
        return self.model.config  # type: ignore[return-value]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x_t.shape[0]
        y = self._labels(B, x_t.device)  # (B,)
        null = torch.full_like(y, self.num_classes)  # (B,) "no label"
        eps = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))  # (2B, ...)
        eps_cond, eps_uncond = eps.chunk(2)  # (B, ...) each
        return eps_uncond + self.scale * (eps_cond - eps_uncond)  # Ho & Salimans eq. 6 with w = scale - 1

    def _labels(self, B: int, device: torch.device) -> torch.Tensor:
        if isinstance(self.y, int):
            return torch.full((B,), self.y, dtype=torch.long, device=device)
        if self.y.shape[0] != B:
            raise ValueError(f"y holds {self.y.shape[0]} labels but x_t holds {B} samples; allowed: equal counts")
        return self.y.to(device)


def cfg(model: ConditionalModel, y: torch.Tensor | int, scale: float, *, num_classes: int | None = None) -> Guided:
    """Classifier-free guidance as a model wrapper: returns ``model(x_t, t) -> eps`` with
    ε = ε_uncond + scale·(ε_cond − ε_uncond).

    model: a class-conditional ``model(x_t, t, y)``; ``num_classes`` defaults to its
    ``config.num_classes`` (and, given, must equal it; a model with num_classes 0 is refused as not
    class-conditional). y: one label for every sample, or an int64 tensor (B,) with B >= 1, each in
    [0, num_classes] (num_classes itself is "no label"). scale: any finite real; 1 is the
    conditional model, 0 the unconditional one, and ``1 + w`` in Ho & Salimans' notation.
    """
    k = _num_classes(model, num_classes)
    scale = check_float("scale", scale)
    if torch.is_tensor(y):
        if y.dtype != torch.long or y.ndim != 1 or y.shape[0] == 0:
            raise ValueError(f"y must be an int or an int64 tensor of shape (B,) with B >= 1, got {y.dtype} of shape "
                             f"{tuple(y.shape)}")
        for label in (int(y.min()), int(y.max())):
            check_label(label, k)
    else:
        y = check_label(y, k)
    return Guided(model, y, scale, k)


def _num_classes(model: ConditionalModel, num_classes: int | None) -> int:
    """The class count cfg uses: the model's own ``config.num_classes`` when it has one (a ``num_classes``
    passed must equal it: another K would make a real class the "no label" token), else ``num_classes``."""
    own = getattr(getattr(model, "config", None), "num_classes", None)
    if own is not None and check_int("the model's num_classes", own, 0) == 0:
        raise ValueError("this model is not class-conditional (its config has num_classes = 0); cfg needs a model "
                         "trained with labels, e.g. pretrained('fashion-mnist-cond')")
    if num_classes is None:
        if own is None:
            raise ValueError("num_classes is needed: this model has no config.num_classes; pass num_classes=K "
                             "(the label K is 'no label')")
        return own
    k = check_int("num_classes", num_classes, 1)
    if own is not None and k != own:
        raise ValueError(f"num_classes={k} contradicts the model, trained with num_classes={own}; leave "
                         f"num_classes out or pass {own}")
    return k


def sdedit_timestep(T: int, strength: float) -> int:
    """The timestep SDEdit starts from: round(strength·(T−1)), for strength in (0, 1]."""
    strength = check_float("strength", strength, 0.0, 1.0, lo_open=True)
    return round(strength * (T - 1))


@torch.no_grad()
def sdedit(
    model: Model,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    strength: float,
    steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip_x0: bool = True,
) -> torch.Tensor:
    """SDEdit: noise x0 to t0 = round(strength·(T−1)) with q(x_t0 | x0), then DDIM from t0 to clean.

    x0: (B, ...) -> (B, ...). Exactly ``steps`` model calls, on ``steps`` distinct timesteps from
    t0 down (trailing spacing over [0, t0], so the first is t0 itself); steps must be in
    [1, t0 + 1]. At strength 1 this is ``ddim_sample`` from q_sample(x0, T−1, noise): x0 is
    nearly forgotten. As strength → 0 it returns x0. The noise is the first draw from ``generator``.
    """
    t0 = sdedit_timestep(schedule.sampling_T, strength)  # sampling_T: T, less a cosine schedule's capped steps
    x0 = check_model_input(model, x0, name="x0")  # shape, dtype, device against a package model; finite
    try:
        steps = check_int("steps", steps, 1, t0 + 1)
    except ValueError as e:
        raise ValueError(f"{e} (strength {strength} starts at t0 = {t0}, which leaves {t0 + 1} timesteps)") from None
    ts, abar_t, abar_prev = step_plan(schedule, ddim_timesteps(t0 + 1, steps, "trailing"))
    coefs = ddim_call_coefs(abar_t, abar_prev, eta)  # DDIM eq. 12 from t0 down; η checked once, before any draw
    noise = randn_like_on(x0, generator)  # (B, ...)
    x_t0 = q_sample(x0, torch.full((x0.shape[0],), t0, dtype=torch.long, device=x0.device), schedule, noise=noise)
    return last_sample(denoise_loop(model, x_t0, ts, coefs, ddim_update(clip_x0), generator))
