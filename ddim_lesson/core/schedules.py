"""Noise schedules and DDIM timestep spacings.

Notation: DDPM's ᾱ_t (``alphas_cumprod[t]``) is what the DDIM paper calls α_t. The papers
index t = 1..T; code indexes t = 0..T-1, so ``alphas_cumprod[0]`` is the first noise level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .checks import check_float, check_int

SPACINGS = ("leading", "trailing", "linspace", "quadratic", "logsnr")
COSINE_BETA_CAP = 0.999  # improved DDPM's cap on the cosine schedule's β
SIGMA_BAR_START = 157.5  # σ̄ where samplers of a cosine model start at the latest: DDPM's linear T = 1000 has 157.4
DEFAULT_SPACING = "trailing"  # starts at T-1, so sampling begins where x_T is pure noise


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A discrete variance schedule β_0..β_{T-1} and its cumulative product ᾱ.

    Fields are float64 tensors of shape (T,). Build one with :meth:`linear` or :meth:`cosine`.
    """

    betas: torch.Tensor
    kind: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b = self.betas
        if b.ndim != 1 or b.numel() < 1:
            raise ValueError(f"betas must be a 1-D tensor with at least one entry, got shape {tuple(b.shape)}")
        if not torch.isfinite(b).all() or (b <= 0).any() or (b >= 1).any():
            raise ValueError("every beta must be finite and in the open interval (0, 1)")
        object.__setattr__(self, "betas", b.detach().to(torch.float64).cpu())

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """DDPM's linear schedule: β_t evenly spaced from ``beta_start`` to ``beta_end``."""
        T = _check_T(T)
        beta_start, beta_end = check_float("beta_start", beta_start), check_float("beta_end", beta_end)
        if not (0.0 < beta_start <= beta_end < 1.0):
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
            )
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        return cls(betas, "linear", {"T": T, "beta_start": beta_start, "beta_end": beta_end})

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008) -> NoiseSchedule:
        """Nichol & Dhariwal's cosine schedule: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2).

        β_t is capped at 0.999 (as in the improved-DDPM paper) so the last step stays invertible. That step
        still takes ᾱ down 1000-fold (2.4e-6 to 2.4e-9 at T = 1000, σ̄ from 642 to 2e4), so samplers start
        below it, where σ̄ <= 157.5 (:attr:`sampling_T`).
        """
        T = _check_T(T)
        s = check_float("s", s)
        if not (0.0 <= s < 1.0):
            raise ValueError(f"cosine offset s must be in [0, 1), got {s}")
        steps = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2  # (T+1,)
        betas = (1 - f[1:] / f[:-1]).clamp(max=COSINE_BETA_CAP)
        return cls(betas, "cosine", {"T": T, "s": s})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseSchedule:
        """Rebuild a schedule from :meth:`to_dict` output (as stored in a checkpoint)."""
        kind = d.get("kind")
        params = {k: v for k, v in d.items() if k != "kind"}
        if kind == "linear":
            return cls.linear(**params)
        if kind == "cosine":
            return cls.cosine(**params)
        raise ValueError(f"unknown schedule kind {kind!r}; allowed: 'linear', 'cosine'")

    def to_dict(self) -> dict[str, Any]:
        if self.kind not in ("linear", "cosine"):
            raise ValueError("only linear and cosine schedules can be serialised")
        return {"kind": self.kind, **self.params}

    # -- derived quantities -------------------------------------------------------------
    @property
    def T(self) -> int:
        return int(self.betas.numel())

    @property
    def alphas(self) -> torch.Tensor:
        """α_t = 1 - β_t, shape (T,)."""
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t = ∏_{s<=t} α_s, shape (T,). DDIM's α_t."""
        return torch.cumprod(self.alphas, dim=0)

    @property
    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t), shape (T,)."""
        abar = self.alphas_cumprod
        return abar / (1.0 - abar)

    @property
    def log_snr(self) -> torch.Tensor:
        return torch.log(self.snr)

    @property
    def sampling_T(self) -> int:
        """Samplers start at timestep sampling_T - 1 at the latest: T, except for a cosine schedule, which starts
        at the last t whose σ̄ = √(1-ᾱ)/√ᾱ is at most SIGMA_BAR_START (157.4, where DDPM's linear schedule at
        T = 1000 starts). The cosine schedule's β cap leaves σ̄ = 2e4 at its last step and 642 one below
        (T = 1000), and each ε error is multiplied by it: a two-moons model trained 3000 steps samples points of
        std (263, 293) from t = 999 against the data's (1.2, 0.7); from t = 998 DDIM with 6 steps still gives
        std 6.6 in x and DPM-Solver++(2M) with 10 trailing steps 4.3; from t = 995 (σ̄ 160) 1.4 and 1.3."""
        if self.kind != "cosine":
            return self.T
        sigma_bar = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()  # (T,) ascending in t
        return max(1, int((sigma_bar <= SIGMA_BAR_START).sum()))

    def abar(self, t: int) -> float:
        """ᾱ at integer timestep t, with the convention ᾱ_{-1} = 1 (clean data)."""
        if not (-1 <= t < self.T):
            raise ValueError(f"timestep {t} out of range; allowed [-1, {self.T - 1}]")
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])


def _check_T(T: int) -> int:
    return check_int("T", T, 1)


def check_steps(steps: int, T: int) -> int:
    """``steps`` as an int in [1, T] (any integer: int, numpy, 0-d tensor; not bool or float), else ValueError."""
    return check_int("steps", steps, 1, T)


def ddim_timesteps(T: int, steps: int, spacing: str = DEFAULT_SPACING,
                   schedule: NoiseSchedule | None = None) -> torch.Tensor:
    """Exactly ``steps`` distinct timesteps in [0, T-1], descending. Shape (steps,), int64.

    - ``leading``:   t_i = i·(T//S)                       (DDIM paper's "uniform" skip)
    - ``trailing``:  round(T - i·T/S) - 1, starts at T-1  (the default)
    - ``linspace``:  round(linspace(0, T-1, S))
    - ``quadratic``: floor(linspace(0, √(0.8T), S)²), collisions pushed apart (paper's "quad")
    - ``logsnr``:    the timesteps nearest to S values uniform in log-SNR from t = T-1 to t = 0,
                     collisions pushed apart as for quadratic. Log-SNR is the ``schedule``'s
                     (default: ``NoiseSchedule.linear(T)``, the course's schedule).

    The formulas are evaluated in exact integer arithmetic (round is half-to-even, as in numpy),
    so a tie such as T - i·T/S = 937.5 is decided by the rule, not by floating-point noise.

    With a ``schedule`` (whose T must be T), the timesteps lie in [0, schedule.sampling_T - 1]: a cosine
    schedule's last steps, where σ̄ exceeds 157.5 (2e4 at its capped last β), are not sampled from; every
    spacing applies to the rest.
    """
    T = _check_T(T)
    if schedule is not None:
        if schedule.T != T:
            raise ValueError(f"{spacing} spacing: the schedule has T = {schedule.T}, but T = {T} was asked for")
        if schedule.sampling_T < T:
            T = schedule.sampling_T
            try:
                check_steps(steps, T)
            except ValueError as e:
                raise ValueError(f"{e} (this cosine schedule's last {schedule.T - T} steps, where σ̄ exceeds "
                                 f"{SIGMA_BAR_START}, are not sampled from)") from None
    S = steps = check_steps(steps, T)
    k = torch.arange(S, dtype=torch.long)  # (S,) exact integers
    if spacing == "leading":
        ts = k * (T // S)
    elif spacing == "trailing":
        ts = _round_div(T * (S - k), S) - 1  # round(T - k·T/S) - 1
    elif spacing == "linspace":
        ts = _round_div(k * (T - 1), S - 1) if S > 1 else k
    elif spacing == "quadratic":
        # floor((k·√(0.8T)/(S-1))²) = floor(4·T·k² / (5·(S-1)²))
        ts = _distinct(torch.div(4 * T * k * k, 5 * (S - 1) ** 2, rounding_mode="floor") if S > 1 else k, T)
    elif spacing == "logsnr":
        ts = _distinct(_logsnr_nearest(schedule if schedule is not None else NoiseSchedule.linear(T), T, S), T)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; allowed: {', '.join(SPACINGS)}")
    return ts.sort(descending=True).values


def _logsnr_nearest(schedule: NoiseSchedule, T: int, S: int) -> torch.Tensor:
    """Ascending (S,) int64: for λ_k uniform from log-SNR(T-1) to log-SNR(0), the t whose log-SNR is nearest."""
    neg = -schedule.log_snr[:T]  # (T,) ascending in t (T may stop short of schedule.T: sampling_T)
    if T == 1:
        return torch.zeros(S, dtype=torch.long)
    # (S,) ascending, uniform in log-SNR; S = 1 gives t = T-1
    target = torch.linspace(float(neg[-1]), float(neg[0]), S, dtype=torch.float64).flip(0)
    hi = torch.searchsorted(neg, target).clamp(1, T - 1)  # neg[hi-1] <= target <= neg[hi]
    lo = hi - 1
    return torch.where(target - neg[lo] <= neg[hi] - target, lo, hi)


def _round_div(n: torch.Tensor, d: int) -> torch.Tensor:
    """round(n / d) for int64 n >= 0 and d > 0, ties to even (numpy's and torch's rule), exactly."""
    q, r = torch.div(n, d, rounding_mode="floor"), torch.remainder(n, d)
    return q + ((2 * r > d) | ((2 * r == d) & (q % 2 == 1))).long()


def _distinct(ts: torch.Tensor, T: int) -> torch.Tensor:
    """Make an ascending int64 sequence strictly increasing inside [0, T-1], moving values minimally.

    Pushing collisions up is out_k = max(ts_k, out_{k-1} + 1), i.e. out_k - k = cummax(ts - k);
    capping the top at T-1 and pushing back down then caps out_k - k at T - S.
    """
    k = torch.arange(ts.numel(), dtype=torch.long)
    return (ts - k).cummax(0).values.clamp(max=T - ts.numel()) + k


def naive_timesteps(T: int, steps: int) -> torch.Tensor:
    """The common buggy recipe: range(0, T, T//S) plus an appended T-1 (descending).

    Kept only to teach the pitfall: it often returns S+1 timesteps, i.e. S+1 model calls.
    """
    T = _check_T(T)
    steps = check_steps(steps, T)
    ts = list(range(0, T, T // steps))
    if ts[-1] != T - 1:
        ts.append(T - 1)
    return torch.tensor(ts[::-1], dtype=torch.long)
