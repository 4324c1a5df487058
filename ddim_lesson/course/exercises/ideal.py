"""The exercise of notebook 09: the ideal denoiser's weights (Bayes on a mixture of point masses), and its checker."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .harness import (
    TOL,
    NotAttempted,
    as_tensor,
    call_learner,
    case_generator,
    case_randn,
    checker,
    max_diff,
    not_attempted,
)


def reference_ideal_weights(x_t: torch.Tensor, data: torch.Tensor, abar: float) -> torch.Tensor:
    """w_i = softmax_i(−‖x_t − √ᾱ x_i‖² / (2(1 − ᾱ))): x_t (B, D), data (N, D) -> (B, N), each row sums to 1.

    Bayes' rule with the prior 1/N on each training point and the likelihood q(x_t | x_i) =
    N(√ᾱ x_i, (1 − ᾱ) I): the 1/N and the Gaussian's normalising constant are the same for every i.
    """
    sq = (x_t[:, None, :] - math.sqrt(abar) * data[None, :, :]).pow(2).sum(-1)  # (B, N) ‖x_t − √ᾱ x_i‖²
    return torch.softmax(-sq / (2 * (1 - abar)), dim=1)


def _variant(x_t: torch.Tensor, data: torch.Tensor, abar: float, scale: float, temp: float, sign: float = -1.0,
             dim: int = 1) -> torch.Tensor:
    sq = (x_t[:, None, :] - scale * data[None, :, :]).pow(2).sum(-1)
    return torch.softmax(sign * sq / (temp * (1 - abar)), dim=dim)


CASES = ((0.98, 5), (0.6, 7), (0.2, 6), (0.02, 9))  # ᾱ, N


def _hint(got: torch.Tensor, x: torch.Tensor, data: torch.Tensor, abar: float) -> str:
    if float((got.sum(1) - 1).abs().max()) > 1e-6:
        return ("each row of w (one x_t) must sum to 1 over the N training points: softmax over dim=1, the "
                "training-point axis.")
    known = {
        "the means are √ᾱ·x_i, not x_i: scale the training points by math.sqrt(abar) before the distance.":
            _variant(x, data, abar, 1.0, 2.0),
        "the Gaussian's exponent divides by 2(1 − ᾱ), not (1 − ᾱ): the temperature is off by 2.":
            _variant(x, data, abar, math.sqrt(abar), 1.0),
        "the variance is 1 − ᾱ, not √(1 − ᾱ) or ᾱ: divide the squared distance by 2 * (1 - abar).":
            _variant(x, data, abar, math.sqrt(abar), 2.0 * math.sqrt(1 - abar) / (1 - abar)),
        "the weight falls with the distance: softmax of MINUS the squared distance.":
            _variant(x, data, abar, math.sqrt(abar), 2.0, sign=1.0),
    }
    for hint, wrong in known.items():
        if max_diff(got, wrong) <= TOL:
            return hint
    return "w_i = softmax_i(−‖x_t − √ᾱ x_i‖² / (2(1 − ᾱ))); the squared distance sums over the D features."


@checker
def check_ideal_weights(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(x_t, data, abar)`` -> (B, N) weights against the reference on four noise levels."""
    g = case_generator(9)
    try:
        for abar, n in CASES:
            data = case_randn((n, 3), g).clamp(-1.5, 1.5)  # (N, D) training points
            x = math.sqrt(abar) * data[:4] + math.sqrt(1 - abar) * case_randn((4, 3), g)  # (B, D) x_t from q(x_t | x_i)
            want = reference_ideal_weights(x, data, abar)
            got = as_tensor(call_learner(fn, x, data, abar), want, f"w at ᾱ = {abar}")
            diff = max_diff(got, want)
            if diff > TOL:
                raise AssertionError(f"the weights are wrong at ᾱ = {abar} with N = {n} (max difference {diff:.3g})."
                                     f"\nHint: {_hint(got, x, data, abar)}")
    except NotAttempted:
        return not_attempted("check_ideal_weights", "Start from Bayes' rule in section 1: each weight is a Gaussian "
                              "likelihood of x_t given one training image, normalised over the N images.")
    print(f"Correct: your weights match Bayes' rule on {len(CASES)} noise levels (ᾱ from {CASES[0][0]} to "
          f"{CASES[-1][0]}), each row summing to 1.")
    return True
