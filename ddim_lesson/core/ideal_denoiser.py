"""The ideal denoiser: the exact minimum-MSE noise predictor of a finite training set.

Let the data distribution be the empirical one, p(x0) = (1/N) Σ_i δ(x0 − x_i). Then
q(x_t | x0 = x_i) = N(√ᾱ_t x_i, (1 − ᾱ_t) I), and Bayes' rule gives the posterior over the N points:

    w_i(x_t, t) = softmax_i( −‖x_t − √ᾱ_t x_i‖² / (2(1 − ᾱ_t)) )
    x̂0 = E[x0 | x_t] = Σ_i w_i x_i
    ε̂  = E[ε | x_t]  = (x_t − √ᾱ_t x̂0) / √(1 − ᾱ_t)

Both are the minimisers of the mean squared error over all functions of x_t, so no network trained on
these N points with the ε-MSE loss can do better; DDIM run with this model returns training points,
once its last step's noise level √(1 − ᾱ) is well below their spacing (notebook 09 measures both).
``IdealDenoiser`` streams over the N points in chunks with a running log-sum-exp, so N = 60,000 images
need only a (B, chunk) block of logits at a time.

With ``labels`` it is also class-conditional, ``model(x_t, t, y)``: the posterior runs over the points of
class y only (y = num_classes: over all of them, "no label"), so ``cfg`` wraps it as it wraps a trained
conditional network, and guidance can be measured against an exact model.

Each chunk expands ‖x_t − √ᾱ x_i‖² = ‖x_t‖² − 2√ᾱ x_t·x_i + ᾱ‖x_i‖² and drops ‖x_t‖², which is the same
for every i and cancels in the softmax. The work is in the data's (or x_t's, if wider) dtype: float64 in,
float64 out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_int, check_label
from .schedules import NoiseSchedule


@dataclass(frozen=True)
class IdealConfig:
    """What ``cfg`` reads from a model: the number of classes (labels 0..K-1; K is "no label")."""

    num_classes: int


@dataclass(frozen=True)
class Posterior:
    """What the ideal denoiser knows about x0 given x_t, for a batch of B.

    x0_pred: (B, ...) E[x0 | x_t]. eps: (B, ...) E[ε | x_t]. w_max: (B,) the largest weight w_i.
    nearest: (B,) int64, the index i of that weight (the training point x_t is most likely to come
    from). n_eff: (B,) 1 / Σ w_i², the effective number of training points the average runs over
    (1: one point, N: all equally).
    """

    x0_pred: torch.Tensor
    eps: torch.Tensor
    w_max: torch.Tensor
    nearest: torch.Tensor
    n_eff: torch.Tensor


class IdealDenoiser(nn.Module):
    """``model(x_t, t) -> eps``, the exact minimum-MSE noise predictor of the points in ``data``.

    data: (N, ...) floating, finite; the samplers then take x_t of shape (B, ...) with the same
    trailing shape, and t an int64 tensor (B,) of timestep indices in [0, T − 1] of ``schedule``.
    chunk: how many training points are held in one block of logits (memory B·chunk; the result
    does not depend on it beyond float rounding). The data is kept as a buffer, not a parameter, so
    samplers do not cast x_t to its dtype; the work runs in the wider of the two dtypes.
    labels: optional (N,) int64 in [0, num_classes − 1] (num_classes defaults to labels.max() + 1); then
    ``model(x_t, t, y)`` with y (B,) int64 in [0, num_classes] is the ideal denoiser of class y's points.
    """

    def __init__(self, data: torch.Tensor, schedule: NoiseSchedule, *, labels: torch.Tensor | None = None,
                 num_classes: int | None = None, chunk: int = 4096) -> None:
        super().__init__()
        if not torch.is_tensor(data) or not data.is_floating_point() or data.ndim < 2 or data.shape[0] < 1:
            raise ValueError("data must be a floating tensor of shape (N, ...) with N >= 1 and at least one "
                             f"feature dimension, got {getattr(data, 'dtype', type(data).__name__)} of shape "
                             f"{tuple(getattr(data, 'shape', ()))}")
        self.chunk = check_int("chunk", chunk, 1)
        self.schedule = schedule
        self.item_shape = tuple(data.shape[1:])
        flat = data.detach().reshape(data.shape[0], -1)  # (N, D)
        sq_norms = torch.linalg.vector_norm(flat, dim=1).square()  # (N,) ‖x_i‖², with no (N, D) temporary
        if not torch.isfinite(sq_norms).all():
            raise ValueError(f"data must be finite everywhere; {int((~torch.isfinite(sq_norms)).sum())} of its "
                             "points have NaN/inf entries (allowed: finite values)")
        self.register_buffer("data", flat, persistent=False)
        self.register_buffer("sq_norms", sq_norms, persistent=False)
        self.register_buffer("abar", schedule.alphas_cumprod, persistent=False)  # (T,) float64
        self.last: Posterior | None = None  # the posterior of the latest forward call
        self.config: IdealConfig | None = None
        if labels is not None:
            if not torch.is_tensor(labels) or labels.dtype != torch.long or tuple(labels.shape) != (self.N,):
                raise ValueError(f"labels must be an int64 tensor of shape ({self.N},), one per point, got "
                                 f"{getattr(labels, 'dtype', type(labels).__name__)} of shape "
                                 f"{tuple(getattr(labels, 'shape', ()))}")
            k = check_int("num_classes", num_classes if num_classes is not None else int(labels.max()) + 1, 1)
            if int(labels.min()) < 0 or int(labels.max()) > k - 1:
                raise ValueError(f"every label must be in [0, {k - 1}], got values from {int(labels.min())} to "
                                 f"{int(labels.max())}")
            self.register_buffer("labels", labels.to(flat.device), persistent=False)
            self.config = IdealConfig(k)
        elif num_classes is not None:
            raise ValueError("num_classes needs labels (one per point); allowed: both or neither")

    @property
    def N(self) -> int:
        return int(self.data.shape[0])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[ε | x_t] (or E[ε | x_t, y]): x_t (B, ...), t (B,) int64, y (B,) int64 -> (B, ...) in x_t's dtype.

        The full :class:`Posterior` of the call is kept as ``self.last``, so a sampler's run can be
        inspected step by step (which training point, how many share the weight) at no extra cost.
        """
        self.last = self.posterior(x_t, t, y)
        return self.last.eps.to(x_t.dtype)

    def x0_pred(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x0 | x_t] = Σ w_i x_i: x_t (B, ...), t (B,) int64 -> (B, ...)."""
        return self.posterior(x_t, t, y).x0_pred

    @torch.no_grad()
    def posterior(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """The posterior over the N training points (of class y, if given) at (x_t, t), streamed in chunks."""
        B = self._check(x_t, t)
        keep = self._classes(y, B)  # (B, 1) label to keep per row, or None: every point
        dtype = torch.promote_types(x_t.dtype, self.data.dtype)
        x = x_t.reshape(B, -1).to(dtype)  # (B, D)
        abar = self.abar[t].to(dtype)  # (B,) ᾱ_t
        sa, var = abar.sqrt()[:, None], (1 - abar)[:, None]  # (B, 1) each: √ᾱ_t and 1 − ᾱ_t
        m = torch.full((B, 1), -torch.inf, dtype=dtype, device=x.device)  # running max logit
        s = torch.zeros((B, 1), dtype=dtype, device=x.device)  # Σ exp(l − m)
        s2 = torch.zeros((B, 1), dtype=dtype, device=x.device)  # Σ exp(2(l − m))
        acc = torch.zeros_like(x)  # (B, D) Σ exp(l − m) x_i
        nearest = torch.zeros(B, dtype=torch.long, device=x.device)
        for start in range(0, self.N, self.chunk):
            xi = self.data[start:start + self.chunk].to(dtype)  # (n, D)
            # −‖x_t − √ᾱ x_i‖² / (2(1 − ᾱ)), less the i-independent −‖x_t‖² / (2(1 − ᾱ))
            logits = (sa * (x @ xi.T) - 0.5 * abar[:, None] * self.sq_norms[start:start + self.chunk].to(dtype)) / var
            if keep is not None:  # other classes get weight 0; the label num_classes keeps every point
                other = (self.labels[start:start + self.chunk][None] != keep) & (keep != self.config.num_classes)
                logits = logits.masked_fill(other, -torch.inf)
            cmax, carg = logits.max(1, keepdim=True)  # (B, 1) each
            nearest = torch.where(cmax[:, 0] > m[:, 0], carg[:, 0] + start, nearest)
            m_new = torch.maximum(m, cmax)
            shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # no point of the class yet: 0
            scale = torch.exp(m - shift)  # (B, 1); exp(−inf) = 0 while nothing has been summed
            e = torch.exp(logits - shift)  # (B, n)
            s = s * scale + e.sum(1, keepdim=True)
            s2 = s2 * scale * scale + (e * e).sum(1, keepdim=True)
            acc = acc * scale + e @ xi
            m = m_new
        x0 = acc / s  # (B, D) Σ w_i x_i
        eps = (x - sa * x0) / var.sqrt()  # ε = (x_t − √ᾱ x̂0)/√(1 − ᾱ)
        shape = (B, *self.item_shape)
        return Posterior(x0.reshape(shape), eps.reshape(shape), (1 / s)[:, 0], nearest, (s * s / s2)[:, 0])

    def _classes(self, y: torch.Tensor | None, B: int) -> torch.Tensor | None:
        if y is None:
            return None
        if self.config is None:
            raise ValueError("y needs an IdealDenoiser built with labels (one per point); allowed: y=None")
        k = self.config.num_classes
        if not torch.is_tensor(y) or y.dtype != torch.long or tuple(y.shape) != (B,):
            raise ValueError(f"y must be an int64 tensor of shape ({B},), got {getattr(y, 'dtype', type(y).__name__)} "
                             f"of shape {tuple(getattr(y, 'shape', ()))}")
        for label in (int(y.min()), int(y.max())):
            check_label(label, k, "every label y")
        present = torch.bincount(self.labels, minlength=k + 1)[:k] > 0  # (k,)
        empty = sorted({int(c) for c in y.tolist() if c < k and not bool(present[c])})
        if empty:
            raise ValueError(f"no training point has label {empty[0]}; allowed: labels that occur in the data")
        return y.to(self.data.device)[:, None]

    def _check(self, x_t: torch.Tensor, t: torch.Tensor) -> int:
        if not torch.is_tensor(x_t) or not x_t.is_floating_point():
            raise ValueError(f"x_t must be a floating tensor of shape (B, {', '.join(map(str, self.item_shape))}), "
                             f"got {getattr(x_t, 'dtype', type(x_t).__name__)}")
        if x_t.ndim < 1 or tuple(x_t.shape[1:]) != self.item_shape or x_t.shape[0] < 1:
            raise ValueError(f"x_t must have shape (B, {', '.join(map(str, self.item_shape))}) with B >= 1, the "
                             f"shape of the training points, got {tuple(x_t.shape)}")
        B = x_t.shape[0]
        if not torch.is_tensor(t) or t.dtype != torch.long or tuple(t.shape) != (B,):
            raise ValueError(f"t must be an int64 tensor of shape ({B},), got "
                             f"{getattr(t, 'dtype', type(t).__name__)} of shape {tuple(getattr(t, 'shape', ()))}")
        T = self.schedule.T
        if int(t.min()) < 0 or int(t.max()) > T - 1:
            raise ValueError(f"every t must be in [0, {T - 1}], got values from {int(t.min())} to {int(t.max())}")
        return B
