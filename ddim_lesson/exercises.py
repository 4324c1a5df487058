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
from .forward import ddim_sigma, q_sample
from .samplers import apply_step, ddim_step, ddpm_coefs
from .schedules import NoiseSchedule

TOL = 1e-5  # inputs are float64, so only a real mistake is this large


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
# Shared machinery
# --------------------------------------------------------------------------------------
class _NotAttempted(Exception):
    pass


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call the learner's function on copies of the inputs; NotImplementedError means 'not yet'."""
    copies = [a.clone() if torch.is_tensor(a) else a for a in args]
    try:
        return fn(*copies)
    except NotImplementedError:
        raise _NotAttempted() from None


def _not_attempted(name: str, what: str) -> bool:
    print(f"{name}: not attempted yet. {what}\nReplace `raise NotImplementedError` with your code and run the "
          "checker again.")
    return False


def _as_tensor(out: Any, like: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.is_tensor(out):
        raise AssertionError(f"{what} should be a torch.Tensor, got {type(out).__name__}")
    if out.shape != like.shape:
        raise AssertionError(f"{what} should have shape {tuple(like.shape)}, got {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise AssertionError(f"{what} has NaN or inf entries")
    return out.double()


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(1.0, abs(b))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=torch.float64)


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
            print(f"Correct: x_t matches ddim_lesson.q_sample at t = {t.tolist()} (max difference "
                  f"{_max_diff(got, want):.1e}).")
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


# --- notebooks 04-05
# --------------------------------------------------------------------------------------
# Notebook 04: σ for every step of a run (eq. 16), and slerp
# --------------------------------------------------------------------------------------
def reference_step_sigmas(schedule: NoiseSchedule, timesteps: torch.Tensor, eta: float) -> torch.Tensor:
    """σ_i(η) of each step of a DDIM run over ``timesteps`` (descending, shape (S,)). Returns (S,) float64.

    Step i goes from t_i to t_(i+1), the next entry of the sequence, and the last step to ᾱ = 1.
    """
    abar = torch.cumprod(1 - schedule.betas, dim=0)  # (T,)  ᾱ_t
    abar_t = abar[timesteps]  # (S,)
    abar_prev = torch.cat([abar[timesteps[1:]], torch.ones(1, dtype=abar.dtype)])  # (S,) ᾱ of the next step
    return eta * ((1 - abar_prev) / (1 - abar_t)).sqrt() * (1 - abar_t / abar_prev).sqrt()  # eq. 16


STEP_SIGMA_CASES = ((10, "trailing", 1.0), (20, "linspace", 0.5), (7, "quadratic", 0.3), (1000, "trailing", 1.0))


def check_step_sigmas(fn: Callable[[NoiseSchedule, torch.Tensor, float], torch.Tensor]) -> bool:
    """Check ``fn(schedule, timesteps, eta) -> σ of shape (S,)`` against ``ddim_lesson.ddim_sigma``, step by step."""
    from .schedules import ddim_timesteps

    schedule = NoiseSchedule.linear(1000)
    try:
        for steps, spacing, eta in STEP_SIGMA_CASES:
            ts = ddim_timesteps(schedule.T, steps, spacing)
            got = _call(fn, schedule, ts, eta)
            if not torch.is_tensor(got) or got.shape != ts.shape:
                shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
                raise AssertionError(f"return a tensor of shape ({steps},), one σ per step; got {shape}")
            t_list = ts.tolist()
            prev = t_list[1:] + [-1]  # ᾱ_(-1) = 1: the last step lands on clean data
            want = torch.tensor([ddim_sigma(schedule.abar(t), schedule.abar(p), eta) for t, p in zip(t_list, prev)],
                                dtype=torch.float64)
            diff = _max_diff(got, want)
            if diff > TOL:
                i = int((got.double() - want).abs().argmax())
                raise AssertionError(
                    f"σ is wrong for S = {steps}, spacing = {spacing!r}, η = {eta} (max difference {diff:.3g}, at "
                    f"step {i}: t = {t_list[i]} -> {prev[i]}, yours {float(got[i]):.5f}, "
                    f"expected {float(want[i]):.5f})."
                    f"\n{_step_sigma_hint(got.double(), want, schedule, ts, eta)}")
    except _NotAttempted:
        return _not_attempted("check_step_sigmas", "For each i, take ᾱ_t = ᾱ[timesteps[i]] and ᾱ_prev = "
                              "ᾱ[timesteps[i+1]] (1 for the last step), then σ = η·√((1-ᾱ_prev)/(1-ᾱ_t))·"
                              "√(1-ᾱ_t/ᾱ_prev).")
    print(f"Correct: your σ matches ddim_lesson.ddim_sigma at every step of {len(STEP_SIGMA_CASES)} runs "
          "(trailing, linspace and quadratic spacing; S up to 1000; η in {0.3, 0.5, 1}).")
    return True


def _step_sigma_hint(got: torch.Tensor, want: torch.Tensor, schedule: NoiseSchedule, ts: torch.Tensor,
                     eta: float) -> str:
    abar = schedule.alphas_cumprod
    a_t = abar[ts]
    one_step = torch.cat([torch.ones(1, dtype=abar.dtype), abar])[ts]  # ᾱ_(t-1), as if all T steps were used

    def sig(a_prev: torch.Tensor) -> torch.Tensor:
        return eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).clamp(min=0).sqrt()

    if float((got - want**2).abs().max()) <= 1e-6:
        return "Hint: these are variances σ²; return the standard deviation σ (a square root)."
    if float((got[:-1] - want[:-1]).abs().max()) <= TOL:
        return ("Hint: every step is right except the last, which goes to clean data: use ᾱ_prev = 1 there "
                "(so σ = 0), not ᾱ at timestep 0.")
    if float((got - sig(one_step)).abs().max()) <= TOL:
        return ("Hint: you used ᾱ_(t-1), one timestep below t. With S < T steps the previous level is the next "
                "entry of the sequence, timesteps[i+1].")
    return "Hint: check eq. 16: σ = η·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev), with ᾱ_prev from the next timestep."


def reference_slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation of each row: z0, z1 of shape (B, D), α in [0, 1]. Returns (B, D)."""
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    theta = torch.arccos(cos.clamp(-1, 1))  # (B, 1) the angle between z0 and z1
    return (torch.sin((1 - alpha) * theta) * z0 + torch.sin(alpha * theta) * z1) / torch.sin(theta)


def check_slerp(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> bool:
    """Check ``fn(z0, z1, alpha) -> z`` on (B, D) Gaussian latents against ``ddim_lesson.slerp``."""
    from .inversion import lerp, slerp

    g = _gen(4)
    z0, z1 = _randn((5, 784), g), _randn((5, 784), g)
    z1[4] = 0.3 * z0[4] + z1[4]  # one pair that is not orthogonal, so the angle matters
    try:
        for alpha in (0.0, 0.25, 0.5, 0.9, 1.0):
            got = _as_tensor(_call(fn, z0, z1, alpha), z0, f"slerp at alpha = {alpha}")
            want = slerp(z0, z1, alpha)
            diff = _max_diff(got, want)
            if diff <= TOL:
                continue
            norm = float(got.norm(dim=-1).mean() / want.norm(dim=-1).mean())
            if _max_diff(got, lerp(z0, z1, alpha)) <= TOL:
                hint = "that is lerp, (1-α)·z0 + α·z1, whose norm shrinks; weight z0 and z1 by sines of angles."
            elif _max_diff(got, want / want.norm(dim=-1, keepdim=True)) <= 1e-4:
                hint = "your result has norm 1; slerp keeps the norm of the latents (about √D = 28 here)."
            elif abs(norm - 1) < 0.02:
                hint = ("the norm is right but the direction is not: θ is the angle between z0 and z1, "
                        "arccos(z0·z1 / (|z0| |z1|)), computed per row, and the weights are "
                        "sin((1-α)θ)/sin θ and sin(αθ)/sin θ.")
            else:
                hint = "slerp(z0, z1, α) = sin((1-α)θ)/sin θ · z0 + sin(αθ)/sin θ · z1, θ the angle between them."
            raise AssertionError(f"slerp is wrong at alpha = {alpha} (max difference {diff:.3g}; your mean norm is "
                                 f"{norm:.3f} of the expected one).\nHint: {hint}")
    except _NotAttempted:
        return _not_attempted("check_slerp", "Compute θ = arccos(z0·z1 / (|z0| |z1|)) per row, then return "
                              "sin((1-α)θ)/sin θ · z0 + sin(αθ)/sin θ · z1.")
    print("Correct: your slerp matches ddim_lesson.slerp at alpha = 0, 0.25, 0.5, 0.9 and 1, "
          "on orthogonal and on correlated pairs.")
    return True


# --------------------------------------------------------------------------------------
# Notebook 05: one step of DDIM inversion
# --------------------------------------------------------------------------------------
def reference_invert_step(x: torch.Tensor, eps: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
    """Move x from noise level ᾱ_from up to ᾱ_to < ᾱ_from with eq. 12 at η = 0. x, eps: (B, ...)."""
    x0_pred = (x - math.sqrt(1 - abar_from) * eps) / math.sqrt(abar_from)  # eq. 9 (x itself when ᾱ_from = 1)
    return math.sqrt(abar_to) * x0_pred + math.sqrt(1 - abar_to) * eps


INVERT_CASES = ((1.0, 0.99), (0.99, 0.9), (0.9, 0.5), (0.5, 0.02), (0.3, 0.0001))  # (ᾱ_from, ᾱ_to)


def check_invert_step(fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> bool:
    """Check ``fn(x, eps, abar_from, abar_to) -> x at ᾱ_to`` against the step ``ddim_lesson.ddim_invert`` takes."""
    from .inversion import _invert_step

    g = _gen(5)
    shape = (3, 1, 4, 4)
    try:
        for abar_from, abar_to in INVERT_CASES:
            x, eps = _randn(shape, g), _randn(shape, g)
            got = _as_tensor(_call(fn, x, eps, abar_from, abar_to), x, f"x at ᾱ_to = {abar_to}")
            want = _invert_step(x.clone(), eps, abar_from, abar_to)
            diff = _max_diff(got, want)
            if diff > TOL:
                swapped = abar_from < 1 and _max_diff(got, reference_invert_step(x, eps, abar_to, abar_from)) <= TOL
                if swapped:
                    hint = "you went the wrong way: the step starts at ᾱ_from (less noise) and ends at ᾱ_to."
                elif _max_diff(got, abar_to * (x - (1 - abar_from) * eps) / abar_from + (1 - abar_to) * eps) <= TOL:
                    hint = "use square roots: √ᾱ and √(1-ᾱ) scale x0 and eps; ᾱ and 1-ᾱ are variances."
                else:
                    hint = ("first recover x0_pred = (x - √(1-ᾱ_from)·eps)/√ᾱ_from (eq. 9), then put it at the new "
                            "level: √ᾱ_to·x0_pred + √(1-ᾱ_to)·eps.")
                raise AssertionError(f"the inversion step is wrong from ᾱ = {abar_from} to ᾱ = {abar_to} "
                                     f"(max difference {diff:.3g}).\nHint: {hint}")
    except _NotAttempted:
        return _not_attempted("check_invert_step", "Compute x0_pred = (x - √(1-ᾱ_from)·eps)/√ᾱ_from, then return "
                              "√ᾱ_to·x0_pred + √(1-ᾱ_to)·eps.")
    print(f"Correct: your step matches the library's inversion step on {len(INVERT_CASES)} cases, from clean "
          "data (ᾱ = 1) to almost pure noise (ᾱ = 0.0001).")
    return True


SOLUTIONS.update(step_sigmas=reference_step_sigmas, slerp=reference_slerp, invert_step=reference_invert_step)
