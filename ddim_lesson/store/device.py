"""Which device to run on, and a description of the machine a result was measured on: the one place
for both (training, the command line, the tables and the benchmarks all ask here). The command
line also bounds cuda:N by the GPUs present (cli.errors.check_cuda_index)."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

ALLOWED = "auto, cpu, cuda, cuda:N, mps"


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU, unless a device is named. Under torchrun, "auto" and "cuda"
    mean this process's GPU, cuda:$LOCAL_RANK."""
    if name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r}; allowed: {ALLOWED}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; allowed here: auto, cpu")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} requested but MPS is not available; allowed here: auto, cpu")
        if dev.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"unsupported device {name!r}; allowed: {ALLOWED}")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def machine() -> dict[str, Any]:
    """Where a result was measured."""
    dev = {"cuda": torch.cuda.get_device_name()} if torch.cuda.is_available() else {}
    load = {"load_avg_1min": round(os.getloadavg()[0], 2)} if hasattr(os, "getloadavg") else {}  # shared CPU?
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), **dev, **load}
