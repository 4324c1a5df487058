"""The multistep update of DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095) as pure tensor maths, in x̄ and λ.

On dx̄/dλ = -x̄ + x̂0(x̄, λ) (λ = -log σ̄) one step of length h is, exactly (DPM-Solver++ eq. 9 divided by α),

    x̄' = e^{-h} x̄ + ∫_0^h e^{-(h-u)} x̂0(λ + u) du,

and a multistep rung replaces x̂0 by the polynomial through its last predictions. Used by the two 3M rungs of
:mod:`ddim_lesson.core.solvers` and, alone, by the order study in :mod:`ddim_lesson.evaluate.solver_study`.
"""

from __future__ import annotations

import math

import torch

D2_WEIGHT = {"dpmpp_3m": 1.0, "dpmpp_3m_exact": 2.0}  # the weight of 3M's second difference, per rung (below)


def order_3m(i: int, n: int) -> int:
    """The order of step i of n in DPM-Solver++(3M), as diffusers lowers it: 1 on the step to σ̄ = 0 (h = ∞), 2 on
    the step before it when n < 15 (its ``lower_order_final``), and 1, 2, 3 on the first steps (the history)."""
    if i == n - 1:
        return 1
    return min(3, i + 1, 2 if i == n - 2 and n < 15 else 3)


def multistep_update(xbar: torch.Tensor, x0s: list[torch.Tensor], lams: list[float], lam_next: float,
                     d2_weight: float = 1.0) -> torch.Tensor:
    """One exponential-integrator step x̄ at λ = lams[-1] -> x̄' at ``lam_next`` from len(x0s) = 1, 2 or 3 predictions.

    x̄' = e^{-h} x̄ + ∫_0^h e^{-(h-u)} x̂0(λ+u) du (DPM-Solver++ eq. 9 divided by α), h = lam_next - λ, with x̂0 the
    polynomial through the predictions ``x0s`` (newest last, each (B, ...)) at ``lams``. Order 1: x̂0 constant (DDIM);
    order 2: 2M's Algorithm 2. Order 3: D1 ≈ h·x̂0' and D2 = (D1_0 - D1_1)/(r0 + r1) ≈ h²/2·x̂0''. The quadratic
    term u²/2·x̂0'' integrates to (h²/2 - h + 1 - e^{-h})·x̂0'' = 2hφ3·D2, hφ3 = 1/2 - (h - 1 + e^{-h})/h²; diffusers
    (and the DPM-Solver code it follows) weights D2 by hφ3 alone: ``d2_weight=1`` is that form, ``d2_weight=2`` the
    exact one. Returns (B, ...).
    """
    h = lam_next - lams[-1]
    e = math.exp(-h)  # e^{-h} = σ̄'/σ̄ (0 on the step to σ̄ = 0, h = ∞)
    x0 = x0s[-1]
    if len(x0s) == 1:
        return e * xbar + (1 - e) * x0  # exactly DDIM (and 2M's first and last step)
    r0 = (lams[-1] - lams[-2]) / h
    D1_0 = (x0 - x0s[-2]) / r0  # h·dx̂0/dλ to first order, the first difference
    if len(x0s) == 2:
        return e * xbar + (1 - e) * (x0 + 0.5 * D1_0)  # = 2M (Alg. 2): a midpoint weight, not ∫ of the line
    r1 = (lams[-2] - lams[-3]) / h
    D1_1 = (x0s[-2] - x0s[-3]) / r1
    D1 = D1_0 + r0 / (r0 + r1) * (D1_0 - D1_1)  # h·dx̂0/dλ to second order
    D2 = (D1_0 - D1_1) / (r0 + r1)  # h²/2·d²x̂0/dλ², the second difference
    h_phi2 = 1 - (1 - e) / h  # ∫_0^h e^{-(h-u)} u du = h - 1 + e^{-h}, over h: the weight of D1 = h·x̂0' (exact)
    h_phi3 = 0.5 - (h - (1 - e)) / h**2  # half the weight of D2 = h²/2·x̂0'' that the exact integral needs
    return e * xbar + (1 - e) * x0 + h_phi2 * D1 + d2_weight * h_phi3 * D2  # DPM-Solver++ eq. 9, Taylor in λ
