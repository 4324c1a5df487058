"""Exercise checkers, their reference solutions, and the environment check every notebook runs first.

Each ``check_*`` takes the learner's function and compares it with the library on random inputs:

- it returns True, and says what was checked, when the function matches;
- it returns False, and says what to write, while the function still raises NotImplementedError;
- it raises AssertionError naming the largest difference and the likely mistake otherwise.

The reference solutions are the ``reference_*`` functions; ``show_solution(name)`` prints one.
They are written from the papers' equations, not by calling the library, so a checker accepting
its reference solution is itself a test of the library.
"""

from __future__ import annotations

import inspect
import math
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .data import DEBIAN_DIR, IDX_FILES, cache_dir
from .env import pick_threads
from .exercise_harness import (  # noqa: F401 - the shared harness; other checker modules import these from here
    TOL,
    LearnerError,
    _as_tensor,
    _call,
    _close,
    _gen,
    _max_diff,
    _not_attempted,
    _NotAttempted,
    _randn,
)
from .forward import ddim_sigma, q_sample
from .samplers import apply_step, ddim_step, ddpm_coefs
from .schedules import NoiseSchedule


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------
def fashion_mnist_location() -> Path | None:
    """The folder holding the Fashion-MNIST IDX files, searched as ``ddim_lesson.data`` does, or None.

    Only looks; unlike loading, it never unpacks anything.
    """
    roots = [Path(p) for p in (os.environ.get("DDIM_LESSON_DATA"),) if p] + [DEBIAN_DIR, cache_dir()]
    for r in roots:
        for folder in (r / "FashionMNIST" / "raw", r):
            if all((folder / f).exists() or (folder / (f + ".gz")).exists() for f in IDX_FILES):
                return folder
    return None


MIN_TORCH = (2, 2)


def _check_versions() -> None:
    """Fail early, with the fix, on an old torch; say where widgets come from."""
    major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    if (major, minor) < MIN_TORCH:
        raise RuntimeError(f"torch {torch.__version__} is too old: the course needs torch >= 2.2. Fix: "
                           "`pip install -U 'torch>=2.2' torchvision` in this environment, or `make clean-venv lab`.")
    try:
        import ipywidgets

        print(f"ipywidgets {ipywidgets.__version__}: sliders need JupyterLab from this environment (`make lab`); "
              "if you see text like VBox(...) instead of sliders, see README > Troubleshooting")
    except ImportError:
        raise RuntimeError("ipywidgets is missing: `pip install -e .` in the course repository") from None


def check_environment(need: tuple[str, ...] = ()) -> dict[str, Any]:
    """Print what this notebook runs on, and raise RuntimeError, with the fix, if a needed item is missing.

    ``need`` may hold "weights" (the shipped Fashion-MNIST model), "samples" (the shipped
    images) and "dataset" (the full Fashion-MNIST). Returns what it found, as a dict.
    """
    from .assets import SAMPLES_FILE
    from .pretrained import WEIGHTS_DIR

    allowed = ("weights", "samples", "dataset")
    for item in need:
        if item not in allowed:
            raise ValueError(f"unknown requirement {item!r}; allowed: {', '.join(allowed)}")
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    weights = WEIGHTS_DIR / "fashion-mnist.safetensors"
    threads = pick_threads()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cpu_threads": threads.threads,
        "threads_reason": threads.reason,
        "weights": weights if weights.exists() and weights.with_suffix(".json").exists() else None,
        "samples": SAMPLES_FILE if SAMPLES_FILE.exists() else None,
        "dataset": fashion_mnist_location(),
    }
    fixes = {
        "weights": f"the shipped model is missing from {WEIGHTS_DIR}. Reinstall the package from the course "
        "repository (`pip install -e .` in its root), or retrain it: see the model card in ddim_lesson/weights/.",
        "samples": f"the shipped sample images are missing ({SAMPLES_FILE}). Reinstall the package from the course "
        "repository (`pip install -e .`).",
        "dataset": "Fashion-MNIST was not found. Set DDIM_LESSON_DATA to a folder with its four IDX .gz files, or "
        "on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist`. Only the optional cells need it.",
    }
    print(f"python {info['python']}, torch {info['torch']}, device: {device}")
    print(f"torch uses {threads.reason}")
    _check_versions()
    for key, label in (("weights", "shipped model"), ("samples", "shipped sample images"),
                       ("dataset", "full Fashion-MNIST")):
        status = f"found ({info[key]})" if info[key] is not None else f"MISSING: {fixes[key]}"
        print(f"{label:22s} {status}")
    missing = [k for k in need if info[k] is None]
    if missing:
        raise RuntimeError("This notebook needs: " + " ".join(fixes[k] for k in missing))
    return info


# --------------------------------------------------------------------------------------
# Notebook 01: the closed form q(x_t | x_0)
# --------------------------------------------------------------------------------------
def reference_q_sample(
    x0: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, noise: torch.Tensor
) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε (DDPM eq. 4). x0, noise: (B, ...); t: (B,) int64."""
    abar = torch.cumprod(1 - schedule.betas, dim=0)[t]  # (B,)  ᾱ_t = ∏_{s<=t} (1 - β_s)
    abar = abar.view(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1) to broadcast over the pixels
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def check_q_sample(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(x0, t, schedule, noise) -> x_t`` against ``ddim_lesson.q_sample``."""
    schedule = NoiseSchedule.linear(1000)
    g = _gen(1)
    t = torch.tensor([0, 1, 10, 250, 500, 999])
    x0, noise = _randn((6, 1, 4, 4), g), _randn((6, 1, 4, 4), g)
    try:
        got = _as_tensor(_call(fn, x0, t, schedule, noise), x0, "x_t")
        want = q_sample(x0, t, schedule, noise=noise)
        if _max_diff(got, want) <= TOL:
            _check_q_sample_channels(fn, schedule, t, g)
            print(f"Correct: x_t matches ddim_lesson.q_sample at t = {t.tolist()} (max difference "
                  f"{_max_diff(got, want):.1e}), on a 1-channel and a 3-channel batch, and leaves its inputs as "
                  "they were.")
            return True
        ones, zeros = torch.ones_like(x0), torch.zeros_like(x0)
        a = _as_tensor(_call(fn, ones, t, schedule, zeros), x0, "x_t")[:, 0, 0, 0]  # coefficient on x0
        b = _as_tensor(_call(fn, zeros, t, schedule, ones), x0, "x_t")[:, 0, 0, 0]  # coefficient on noise
    except _NotAttempted:
        return _not_attempted("check_q_sample", "Write x_t = √ᾱ_t·x0 + √(1-ᾱ_t)·noise, with ᾱ_t the cumulative "
                              "product of (1 - β_s) for s = 0..t, one t per batch entry.")
    abar = schedule.alphas_cumprod[t]
    alpha = 1 - schedule.betas[t]
    rows = "\n".join(f"  t = {int(tt):4d}: yours {float(ai):.5f}·x0 + {float(bi):.5f}·noise,  expected "
                     f"{math.sqrt(ab):.5f}·x0 + {math.sqrt(1 - ab):.5f}·noise"
                     for tt, ai, bi, ab in zip(t, a, b, abar.tolist()))
    hint = _q_sample_hint(a, b, abar, alpha, schedule, t)
    raise AssertionError(f"x_t does not match q(x_t | x_0) (max difference {_max_diff(got, want):.3g}).\n"
                         f"{hint}\nCoefficients found by probing your function:\n{rows}")


def _check_q_sample_channels(fn: Callable[..., torch.Tensor], schedule: NoiseSchedule, t: torch.Tensor,
                             g: torch.Generator) -> None:
    """An answer right on (B, 1, H, W) must hold on (B, 3, H, W) too: ᾱ_t broadcasts as (B, 1, 1, 1)."""
    x0, noise = _randn((6, 3, 4, 4), g), _randn((6, 3, 4, 4), g)
    hint = ("Hint: ᾱ_t has one value per batch entry. Reshape it to (B, 1, 1, 1), e.g. `abar.view(-1, 1, 1, 1)` or "
            "`abar[:, None, None, None]`, so that it broadcasts over channels and pixels; `view(B, C, 1, 1)` works "
            "only while C = 1.")
    where = "x_t is right for 1-channel images, but not for a 3-channel batch of shape (6, 3, 4, 4)"
    try:
        got = _as_tensor(_call(fn, x0, t, schedule, noise), x0, "x_t for the 3-channel batch")
    except _NotAttempted:
        raise AssertionError(f"{where}: your function raised NotImplementedError.\n{hint}") from None
    except AssertionError as e:
        raise AssertionError(f"{where}: {e}\n{hint}") from None
    diff = _max_diff(got, q_sample(x0, t, schedule, noise=noise))
    if diff > TOL:
        raise AssertionError(f"{where} (max difference {diff:.3g}).\n{hint}")


def _q_sample_hint(a: torch.Tensor, b: torch.Tensor, abar: torch.Tensor, alpha: torch.Tensor,
                   schedule: NoiseSchedule, t: torch.Tensor) -> str:
    def same(u: torch.Tensor, v: torch.Tensor) -> bool:
        return bool((u.double() - v.double()).abs().max() <= 1e-4)

    if same(a, abar) or same(b, 1 - abar):
        return ("Hint: ᾱ_t and 1-ᾱ_t are variances; the coefficients are their square roots: "
                "√ᾱ_t on x0 and √(1-ᾱ_t) on the noise.")
    if same(a, alpha.sqrt()):
        return ("Hint: you used one step's α_t = 1-β_t. Jumping from x_0 to x_t in one draw needs the cumulative "
                "product ᾱ_t = α_0·α_1·…·α_t.")
    full = schedule.alphas_cumprod
    if same(a, full[(t + 1).clamp(max=schedule.T - 1)].sqrt()) or same(a, full[(t - 1).clamp(min=0)].sqrt()) \
            or same(a, torch.cat([torch.ones(1, dtype=full.dtype), full])[t].sqrt()):
        return "Hint: an off-by-one in the index: ᾱ_t is alphas_cumprod[t], which includes β_t itself."
    if same(a * a + b * b, torch.ones_like(a)):
        return "Hint: the variances add up to 1, but the split between signal and noise is wrong at some t."
    return "Hint: the mean of x_t is √ᾱ_t·x0 and its standard deviation √(1-ᾱ_t); check both coefficients."


# --------------------------------------------------------------------------------------
# Notebook 02: one step of DDPM ancestral sampling
# --------------------------------------------------------------------------------------
def reference_ddpm_step(
    x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: NoiseSchedule, noise: torch.Tensor
) -> torch.Tensor:
    """x_{t-1} = (x_t - β_t/√(1-ᾱ_t)·ε)/√α_t + σ_t z with σ_t² = β̃_t (DDPM eq. 11 and Algorithm 2).

    x_t, eps, noise: (B, ...); t: an int in [0, T-1]. The last step (t = 0) adds no noise.
    """
    beta = float(schedule.betas[t])
    alpha = 1 - beta
    abar_t = float(torch.cumprod(1 - schedule.betas, 0)[t])
    abar_prev = float(torch.cumprod(1 - schedule.betas, 0)[t - 1]) if t > 0 else 1.0
    mean = (x_t - beta / math.sqrt(1 - abar_t) * eps) / math.sqrt(alpha)
    sigma = math.sqrt((1 - abar_prev) / (1 - abar_t) * beta)  # √β̃_t; 0 at t = 0
    return mean + sigma * noise


def check_ddpm_step(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(x_t, eps, t, schedule, noise) -> x_{t-1}`` against the library's ancestral step."""
    schedule = NoiseSchedule.linear(1000)
    g = _gen(2)
    shape = (3, 1, 4, 4)
    try:
        for t in (999, 500, 100, 10, 1, 0):
            x_t, eps, noise = _randn(shape, g), _randn(shape, g), _randn(shape, g)
            got = _as_tensor(_call(fn, x_t, eps, t, schedule, noise), x_t, f"x_(t-1) at t = {t}")
            c = ddpm_coefs(schedule.abar(t), schedule.abar(t - 1), "posterior")
            want, _ = apply_step(x_t.clone(), eps, c, noise, clip_x0=False)
            if _max_diff(got, want) > TOL:
                zeros, ones = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
                sigma = float(_as_tensor(_call(fn, zeros, zeros, t, schedule, ones), x_t, "x_(t-1)")[0, 0, 0, 0])
                mean = _as_tensor(_call(fn, x_t, eps, t, schedule, zeros), x_t, "x_(t-1)")
                want_mean, _ = apply_step(x_t.clone(), eps, c, None if c.sigma == 0 else zeros, clip_x0=False)
                raise AssertionError(
                    f"x_(t-1) differs from DDPM's ancestral step at t = {t} (max difference "
                    f"{_max_diff(got, want):.3g}).\n{_ddpm_hint(t, schedule, sigma, c.sigma, mean, want_mean)}")
    except _NotAttempted:
        return _not_attempted("check_ddpm_step", "Write x_(t-1) = (x_t - β_t/√(1-ᾱ_t)·eps)/√α_t + σ_t·noise "
                              "with σ_t² = β̃_t = (1-ᾱ_(t-1))/(1-ᾱ_t)·β_t, and ᾱ_(-1) = 1.")
    print("Correct: your step matches the library's ancestral step (posterior variance β̃) at "
          "t = 999, 500, 100, 10, 1 and 0, including no noise on the last step.")
    return True


def _ddpm_hint(t: int, schedule: NoiseSchedule, sigma: float, want_sigma: float, mean: torch.Tensor,
               want_mean: torch.Tensor) -> str:
    if _max_diff(mean, want_mean) > TOL:
        return ("Hint: the mean is wrong. It is (x_t - β_t/√(1-ᾱ_t)·eps)/√α_t: divide by √α_t of this one step "
                "(α_t = 1-β_t), and scale eps by β_t/√(1-ᾱ_t) with the cumulative ᾱ_t.")
    if t == 0 and sigma != 0:
        return "Hint: the mean is right, but the last step (t = 0) must add no noise: σ_0 = 0 since ᾱ_(-1) = 1."
    if _close(sigma, math.sqrt(float(schedule.betas[t]))):
        return (f"Hint: the mean is right, but your noise scale is √β_t = {sigma:.5f}. This lesson uses the "
                f"posterior variance β̃_t = (1-ᾱ_(t-1))/(1-ᾱ_t)·β_t, so σ_t = {want_sigma:.5f}.")
    if _close(sigma, float(schedule.betas[t])) or _close(sigma, want_sigma**2):
        return f"Hint: the mean is right; σ_t is a standard deviation, the square root of β̃_t: {want_sigma:.5f}."
    return f"Hint: the mean is right, but your noise scale is {sigma:.5f}; σ_t = √β̃_t = {want_sigma:.5f}."


# --------------------------------------------------------------------------------------
# Notebook 03: the DDIM update (eq. 12)
# --------------------------------------------------------------------------------------
def reference_ddim_step(
    x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, eta: float, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step from ᾱ_t to ᾱ_prev (DDIM eq. 12, σ from eq. 16). Returns (x_prev, x0_pred), (B, ...)."""
    x0_pred = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)  # eq. 9: "predicted x0"
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t)) * math.sqrt(1 - abar_t / abar_prev)  # eq. 16
    direction = math.sqrt(1 - abar_prev - sigma**2) * eps  # "direction pointing to x_t"
    return math.sqrt(abar_prev) * x0_pred + direction + sigma * noise, x0_pred


DDIM_CASES = (  # (ᾱ_t, ᾱ_prev, η): one step, strided steps, the last step to ᾱ = 1, and η > 0
    (0.5, 0.6, 0.0),
    (0.02, 0.3, 0.0),
    (0.9, 1.0, 0.0),
    (0.5, 0.6, 0.5),
    (0.02, 0.3, 1.0),
    (0.3, 0.9, 0.8),
    (0.9, 1.0, 1.0),
)


def check_ddim_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Check ``fn(x_t, eps, abar_t, abar_prev, eta, noise) -> (x_prev, x0_pred)`` against ``ddim_step``."""
    g = _gen(3)
    shape = (4, 1, 4, 4)
    try:
        for abar_t, abar_prev, eta in DDIM_CASES:
            x_t, eps, noise = _randn(shape, g), _randn(shape, g), _randn(shape, g)
            out = _call(fn, x_t, eps, abar_t, abar_prev, eta, noise)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise AssertionError(f"return a tuple (x_prev, x0_pred); got {type(out).__name__}")
            where = f"ᾱ_t = {abar_t}, ᾱ_prev = {abar_prev}, η = {eta}"
            x_prev, x0_pred = _as_tensor(out[0], x_t, "x_prev"), _as_tensor(out[1], x_t, "x0_pred")
            want, want_x0 = ddim_step(x_t, eps, abar_t, abar_prev, eta=eta, noise=noise)
            if _max_diff(x0_pred, want_x0) > TOL:
                raise AssertionError(f"x0_pred is wrong at {where} (max difference {_max_diff(x0_pred, want_x0):.3g})."
                                     "\nHint: eq. 9 inverts x_t = √ᾱ_t·x0 + √(1-ᾱ_t)·eps: "
                                     "x0_pred = (x_t - √(1-ᾱ_t)·eps)/√ᾱ_t.")
            if _max_diff(x_prev, want) > TOL:
                raise AssertionError(f"x_prev is wrong at {where} (max difference {_max_diff(x_prev, want):.3g}).\n"
                                     + _ddim_hint(fn, abar_t, abar_prev, eta, shape))
    except _NotAttempted:
        return _not_attempted("check_ddim_step", "Compute x0_pred (eq. 9), σ from η (eq. 16), then x_prev = "
                              "√ᾱ_prev·x0_pred + √(1-ᾱ_prev-σ²)·eps + σ·noise (eq. 12); return (x_prev, x0_pred).")
    print(f"Correct: your step matches ddim_lesson.ddim_step on {len(DDIM_CASES)} cases, with η in {{0, 0.5, 0.8, 1}} "
          "and a last step to ᾱ = 1.")
    return True


def _ddim_hint(fn: Callable[..., Any], abar_t: float, abar_prev: float, eta: float, shape: tuple[int, ...]) -> str:
    """Probe the learner's step for its noise scale σ and its eps coefficient, and name the mismatch."""
    zeros, ones = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
    sigma = float(_call(fn, zeros, zeros, abar_t, abar_prev, eta, ones)[0][0, 0, 0, 0])
    # x_t = √(1-ᾱ_t)·eps makes x0_pred = 0, so x_prev is the eps coefficient times eps
    c_eps = float(_call(fn, math.sqrt(1 - abar_t) * ones, ones, abar_t, abar_prev, eta, zeros)[0][0, 0, 0, 0])
    want_sigma = ddim_sigma(abar_t, abar_prev, eta)
    want_c_eps = math.sqrt(max(1 - abar_prev - want_sigma**2, 0.0))
    if not _close(sigma, want_sigma):
        if _close(sigma, want_sigma**2):
            return f"Hint: your noise scale is σ² = {sigma:.5f}; multiply the noise by σ = {want_sigma:.5f}."
        return (f"Hint: your noise scale is {sigma:.5f}, but σ(η) = η·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev) "
                f"= {want_sigma:.5f} here (eq. 16).")
    if not _close(c_eps, want_c_eps):
        if _close(c_eps, math.sqrt(1 - abar_prev)):
            return ("Hint: σ is right, but the eps coefficient must shrink as noise is added: it is "
                    f"√(1-ᾱ_prev-σ²) = {want_c_eps:.5f}, not √(1-ᾱ_prev) = {c_eps:.5f}. At η = 0 the two agree, "
                    "which is why only the η > 0 cases fail.")
        return f"Hint: the coefficient of eps is {c_eps:.5f}; eq. 12 says √(1-ᾱ_prev-σ²) = {want_c_eps:.5f}."
    return "Hint: σ and the eps coefficient are right; check the x0 term, √ᾱ_prev·x0_pred (a square root)."


# --------------------------------------------------------------------------------------
# Showing a solution
# --------------------------------------------------------------------------------------
SOLUTIONS = {
    "q_sample": reference_q_sample,
    "ddpm_step": reference_ddpm_step,
    "ddim_step": reference_ddim_step,
}


def show_solution(name: str) -> None:
    """Print the source of the reference solution ``name`` (one of SOLUTIONS)."""
    if name not in SOLUTIONS:
        raise ValueError(f"unknown exercise {name!r}; allowed: {', '.join(SOLUTIONS)}")
    print(inspect.getsource(SOLUTIONS[name]))


# --------------------------------------------------------------------------------------
# Notebooks 04-05: their checkers live in exercises_nb45 and are re-exported here
# --------------------------------------------------------------------------------------
from .exercises_nb45 import (  # noqa: E402, F401 - re-exported; after SOLUTIONS, which it extends
    INVERT_CASES,
    STEP_SIGMA_CASES,
    check_invert_step,
    check_slerp,
    check_step_sigmas,
    reference_invert_step,
    reference_slerp,
    reference_step_sigmas,
)

SOLUTIONS.update(step_sigmas=reference_step_sigmas, slerp=reference_slerp, invert_step=reference_invert_step)
