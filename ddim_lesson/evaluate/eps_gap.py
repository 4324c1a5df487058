"""Two ε-models on the same noisy inputs, timestep by timestep: where do they agree, and where do they part?

For data x0 (N, ...) and each timestep t, one noise draw ε gives x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (DDPM
eq. 4), and both models predict ε from the same x_t. Three mean squared errors per dimension come back:
model a against the true ε, model b against it, and a against b. Notebook 09 uses it with a trained UNet
and the ideal denoiser of its training set: on training images the ideal one is the best possible
predictor; on held-out images it is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.checks import check_int
from ..core.forward import q_sample
from ..core.samplers import Model
from ..core.schedules import NoiseSchedule
from ..store.instruments import progress_bar


@dataclass(frozen=True)
class EpsGap:
    """Per timestep and sample, (K, N) float64, each a mean over the sample's dimensions:
    err_a = (ε_a − ε)², err_b = (ε_b − ε)², err_ab = (ε_a − ε_b)². ``mse_a``, ``mse_b`` and ``gap`` are
    their means over the N samples, (K,). Columns of the (K, N) fields split the data (e.g. training and
    held-out images).
    """

    timesteps: list[int]
    err_a: torch.Tensor
    err_b: torch.Tensor
    err_ab: torch.Tensor

    @property
    def mse_a(self) -> torch.Tensor:
        return self.err_a.mean(1)

    @property
    def mse_b(self) -> torch.Tensor:
        return self.err_b.mean(1)

    @property
    def gap(self) -> torch.Tensor:
        return self.err_ab.mean(1)


@torch.no_grad()
def eps_gap_by_t(
    model_a: Model,
    model_b: Model,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    timesteps: Sequence[int] | torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> EpsGap:
    """Both models on the same x_t for each t in ``timesteps`` (K ints in [0, T − 1]); x0: (N, ...), one batch.

    The noise is one (N, ...) draw per timestep from ``generator``, in x0's dtype, in the order of
    ``timesteps``. Costs K calls of each model, on a batch of N: put two sets in one x0 and split the
    (K, N) fields by column to compare them at the cost of one.
    """
    ts = [check_int("timestep", t, 0, schedule.T - 1) for t in torch.as_tensor(timesteps).reshape(-1).tolist()]
    if not ts:
        raise ValueError("timesteps must hold at least one timestep in [0, T - 1]")
    if not torch.is_tensor(x0) or x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must be a tensor of shape (N, ...) with N >= 1, got {tuple(getattr(x0, 'shape', ()))}")
    out = torch.empty(3, len(ts), x0.shape[0], dtype=torch.float64)
    for k, t in enumerate(progress_bar(len(ts), "ε gap by t", progress, unit="t", iterable=ts)):
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)  # (N, ...)
        tt = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)  # (N,)
        x_t = q_sample(x0, tt, schedule, noise=eps)  # DDPM eq. 4
        ea, eb = model_a(x_t, tt).double(), model_b(x_t, tt).double()  # (N, ...) each
        e = eps.double()
        out[:, k] = torch.stack([(d.pow(2)).flatten(1).mean(1) for d in (ea - e, eb - e, ea - eb)])  # (3, N)
    return EpsGap(ts, out[0], out[1], out[2])
