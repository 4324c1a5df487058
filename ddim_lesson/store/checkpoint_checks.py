"""What a checkpoint may hold, checked before anything is built from it.

- Tensors: floating point and finite. The only integers allowed are the noise generator's state
  (``rng.*``, uint8) and BatchNorm's counter (``*num_batches_tracked``, int64). Checked on the
  header, before the tensors are read, and again on the values (NaN, inf).
- Configs: a noise schedule's T and a model's sizes are bounded, and the model is first built on
  the ``meta`` device (no memory) and compared with the weights in the file, so a config that asks
  for gigabytes is refused instead of allocated.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.checks import check_int
from ..nets.models import build_model
from .checkpoint_files import CheckpointError

FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors' names
INT_BUFFERS = (("rng.", "", "U8"), ("", "num_batches_tracked", "I64"))  # (prefix, suffix, dtype) allowed
MAX_T = 100_000  # diffusion steps of a schedule (DDPM uses 1000)
MAX_BLOCKS = 256  # a model's depth or blocks per level
MAX_WIDTH = 1 << 16  # any width, channel count, or class count
MAX_LEVELS = 8  # entries of channel_mults


def check_header_dtypes(header: dict[str, Any], where: str) -> None:
    """Refuse non-floating tensors (integers, complex, bool) other than the known integer buffers."""
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype in FLOAT_DTYPES or any(name.startswith(p) and name.endswith(s) and dtype == d
                                        for p, s, d in INT_BUFFERS):
            continue
        raise CheckpointError(f"{where}: tensor {name!r} has dtype {dtype!r}; a checkpoint's weights must be "
                              f"floating point ({', '.join(FLOAT_DTYPES)}); the file is crafted or from another "
                              "program: retrain, or convert the weights to float")


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Refuse NaN or inf in any floating tensor, naming the first one."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{where}: tensor {name!r} holds {bad} non-finite values (NaN or inf) of "
                                  f"{t.numel()}; the weights are broken: resume from an earlier checkpoint or retrain")


def check_schedule_dict(d: Any, train_config: Any = None) -> None:
    """Bound the schedule's T before the schedule is built (T = 10^9 would allocate gigabytes), and hold it
    to the T the model was trained with (``train_config["T"]``, when the metadata has one): a model trained
    on 1000 steps sampled on a 10-step schedule sees timesteps it never learned, and says nothing."""
    if not isinstance(d, dict):
        raise ValueError(f"the schedule must be a JSON object, got {type(d).__name__}")
    T = check_int("schedule T", d.get("T"), 1, MAX_T)
    trained = train_config.get("T") if isinstance(train_config, dict) else None
    if trained is not None and trained != T:
        raise ValueError(f"the schedule has T = {T} but the model was trained with T = {trained} (train_config.T); "
                         "the metadata was edited or mixed from two runs")


def check_model_config(model_type: Any, config: Any) -> None:
    """Bound every size in a model config before a model is built from it."""
    if not isinstance(config, dict):
        raise ValueError(f"the model config must be a JSON object, got {type(config).__name__}")
    for key, value in config.items():
        if isinstance(value, list):
            if len(value) > MAX_LEVELS:
                raise ValueError(f"{key} must have at most {MAX_LEVELS} entries, got {len(value)}")
            for v in value:
                check_int(f"an entry of {key}", v, 0, MAX_WIDTH)
        elif isinstance(value, int) and not isinstance(value, bool):
            check_int(key, value, 0, MAX_BLOCKS if key in ("depth", "num_res_blocks") else MAX_WIDTH)


def build_checked(model_type: Any, config: Any, state: dict[str, torch.Tensor]) -> nn.Module:
    """Build the model only if its config is bounded and its parameters match ``state`` (names, shapes,
    floating dtype); the comparison is made on a model on the meta device, which allocates nothing.
    Raises ValueError (bad config) or CheckpointError (weights that do not match)."""
    check_model_config(model_type, config)
    with torch.device("meta"):
        shell = build_model(model_type, config)
    check_matches(shell, config, state)
    return build_model(model_type, config)


def check_matches(shell: nn.Module, config: Any, state: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError unless ``shell`` (a model built on the meta device from ``config``, which allocates
    nothing) has exactly the parameters of ``state``: names, shapes, floating dtype. The weights were read from
    a file of bounded size, so a model that matches them is bounded too."""
    want = shell.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    shapes = [k for k in set(want) & set(state) if want[k].shape != state[k].shape]
    kinds = [k for k in set(want) & set(state) if want[k].is_floating_point() != state[k].is_floating_point()]
    if missing or extra or shapes or kinds:
        raise CheckpointError(
            f"weights do not match the model config {config}: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]}), "
            f"{len(shapes)} with another shape (e.g. {shapes[:2]}), {len(kinds)} of another kind of dtype "
            f"(e.g. {kinds[:2]}); the config and the weights are from different runs or models: "
            "copy the checkpoint again or retrain"
        )
