"""What a notebook checks first: :func:`check_environment` prints the versions, the device and torch's thread
choice, and says, with the fix, what is missing: the shipped model, the shipped images or the full Fashion-MNIST.

The thread rule itself (one torch thread per idle core; a count the user set wins) lives below the layers that
use it, beside the device, in :mod:`ddim_lesson.store.device`, so that training, the tables and the command line
take it from there; its names are imported here for the notebooks (``from ddim_lesson.course.env import
pick_threads`` keeps working), and check_environment prints the choice in the announcement's one wording,
``store.device.thread_line``, on stdout (a command announces it on stderr; JupyterLab paints stderr red).
"""

from __future__ import annotations

import platform
from typing import Any

import torch

from ..store.data import fashion_mnist_location
from ..store.device import (  # noqa: F401  (the thread rule's names, re-exported for the notebooks)
    ENV_VAR,
    USER_VARS,
    WINDOW_S,
    ThreadChoice,
    announce_threads,
    available_cores,
    idle_cores,
    load_rule_reason,
    physical_cores,
    pick_threads,
    thread_line,
    threads_for,
    torch_default_threads,
    user_threads,
)

# --------------------------------------------------------------------------------------
# What the course needs here: torch, ipywidgets, the shipped files, the dataset
# --------------------------------------------------------------------------------------
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
    from ..store.assets import SAMPLES_FILE
    from ..store.pretrained import WEIGHTS_DIR

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
    print(thread_line(threads))  # the announcement's wording, on stdout: JupyterLab shows stderr as an error
    _check_versions()
    for key, label in (("weights", "shipped model"), ("samples", "shipped sample images"),
                       ("dataset", "full Fashion-MNIST")):
        status = f"found ({info[key]})" if info[key] is not None else f"MISSING: {fixes[key]}"
        print(f"{label:22s} {status}")
    missing = [k for k in need if info[k] is None]
    if missing:
        raise RuntimeError("This notebook needs: " + " ".join(fixes[k] for k in missing))
    return info
