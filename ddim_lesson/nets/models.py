"""Denoisers: a small UNet for 28×28/32×32 images and an MLP for 2-D toy data.

Both follow the model contract ``model(x_t, t) -> eps`` with t a (B,) int64 tensor.
Their size is set by a config dataclass, so the same code gives a CPU-sized and a GPU-sized model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import check_int, check_label


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Transformer style). t: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    return F.pad(emb, (0, dim % 2))  # (B, dim)


def _check_positive_int(obj: Any, name: str) -> None:
    setattr(obj, name, check_int(name, getattr(obj, name), 1))  # a plain int, so the config stays JSON


def _check_time_scale(obj: Any) -> None:
    if not (isinstance(obj.time_scale, (int, float)) and 0 < obj.time_scale < math.inf):
        raise ValueError(f"time_scale must be a finite number > 0, got {obj.time_scale!r}")
    obj.time_scale = float(obj.time_scale)


# --------------------------------------------------------------------------------------
# UNet
# --------------------------------------------------------------------------------------
@dataclass
class UNetConfig:
    """Size of the UNet. Resolutions halve once per entry of ``channel_mults`` after the first."""

    in_channels: int = 1
    image_size: int = 28
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    groups: int = 8
    attn_heads: int = 4
    dropout: float = 0.0
    num_classes: int = 0  # > 0: class-conditional, model(x_t, t, y); the label num_classes means "no label"
    time_scale: float = 1.0  # the embedding sees t·time_scale: 1 for integer t, T for a flow model's s in [0, 1]

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.num_classes = check_int("num_classes", self.num_classes, 0)  # 0: unconditional
        _check_time_scale(self)
        for name in ("base_channels", "num_res_blocks", "groups", "attn_heads"):
            _check_positive_int(self, name)
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be a non-empty list of integers >= 1, got {list(self.channel_mults)}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.image_size not in (28, 32):
            raise ValueError(f"image_size must be 28 or 32, got {self.image_size}")
        down = 2 ** (len(self.channel_mults) - 1)
        if self.image_size % down:
            raise ValueError(f"image_size {self.image_size} must be divisible by {down} for {self.channel_mults}")
        for m in self.channel_mults:
            if (self.base_channels * m) % self.groups:
                raise ValueError(f"channels {self.base_channels * m} must be divisible by groups={self.groups}")
        c_low = self.base_channels * self.channel_mults[-1]
        if c_low % self.attn_heads:
            raise ValueError(f"attention channels {c_low} must be divisible by attn_heads={self.attn_heads}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        if not self.num_classes:
            del d["num_classes"]  # an unconditional config reads as it did before labels existed
        if self.time_scale == 1.0:
            del d["time_scale"]  # an ε-model's config reads as it did before flow models existed
        return d


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, plus the time embedding, twice, with a skip connection."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.t_proj = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        h = h + self.t_proj(temb)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions, with a residual connection."""

    def __init__(self, c: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W)
        q, k, v = qkv.unbind(1)  # each (B, heads, C/heads, HW)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        h = h.transpose(-1, -2).reshape(B, C, H, W)  # (B, C, H, W)
        return x + self.out(h)


class UNet(nn.Module):
    """ε-prediction UNet: sinusoidal time embedding, ResBlocks with GroupNorm, attention at
    the lowest resolution. x: (B, C, H, W), t: (B,) int64 -> eps: (B, C, H, W).

    With ``config.num_classes = K > 0`` it is class-conditional: ``model(x, t, y)`` with y an
    int64 (B,) in [0, K], where the label K means "no label" (and is what a missing y means).
    A label embedding is added to the time embedding. Its "no label" row starts at zero, so a
    conditional UNet initialised from an unconditional one computes exactly what that one did when
    given no label; the class rows start random (N(0, 1)), so each label is distinct from step 0.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or UNetConfig()
        ch = [cfg.base_channels * m for m in cfg.channel_mults]
        t_dim = 4 * cfg.base_channels
        self.t_mlp = nn.Sequential(nn.Linear(cfg.base_channels, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        if cfg.num_classes:
            self.label_emb = nn.Embedding(cfg.num_classes + 1, t_dim)  # rows ~ N(0, 1), as nn.Embedding does
            nn.init.zeros_(self.label_emb.weight[cfg.num_classes])  # row num_classes, "no label": adds nothing
        self.stem = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)

        def block(a: int, b: int) -> ResBlock:
            return ResBlock(a, b, t_dim, cfg.groups, cfg.dropout)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, c = [], ch[0]
        for level, c_out in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(block(c, c_out))
                c = c_out
            self.down.append(blocks)
            skips.append(c)
            last = level == len(ch) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1, self.mid_attn, self.mid2 = block(c, c), SelfAttention(c, cfg.attn_heads, cfg.groups), block(c, c)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(ch))):
            blocks = nn.ModuleList()
            for j in range(cfg.num_res_blocks):
                blocks.append(block(c + skips[level] if j == 0 else c, ch[level]))
                c = ch[level]
            self.up.append(blocks)
            self.upsample.append(nn.Identity() if level == 0 else nn.Conv2d(c, c, 3, padding=1))
        self.head = nn.Sequential(nn.GroupNorm(cfg.groups, c), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.t_mlp(timestep_embedding(t * self.config.time_scale, self.config.base_channels))  # (B, t_dim)
        if self.config.num_classes:
            temb = temb + self.label_emb(self._labels(y, x.shape[0], x.device))  # (B, t_dim)
        elif y is not None:
            raise ValueError("this UNet is unconditional (num_classes=0): call it as model(x_t, t), without y")
        h = self.stem(x)  # (B, ch0, H, W)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for blk in blocks:
                h = blk(h, temb)
            skips.append(h)
            h = down(h)  # halves H, W except at the last level
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for blocks, up in zip(self.up, self.upsample):
            h = torch.cat([h, skips.pop()], dim=1)  # (B, c + c_skip, H, W)
            for blk in blocks:
                h = blk(h, temb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # doubles H, W
        return self.head(h)

    def _labels(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """y checked against [0, num_classes], or "no label" (num_classes) for all when y is None. -> (B,)."""
        k = self.config.num_classes
        if y is None:
            return torch.full((batch,), k, dtype=torch.long, device=device)
        if not torch.is_tensor(y) or y.dtype != torch.long or y.shape != (batch,):
            got = f"{y.dtype} of shape {tuple(y.shape)}" if torch.is_tensor(y) else repr(y)
            raise ValueError(f"y must be an int64 tensor of shape ({batch},), got {got}")
        for label in (int(y.min()), int(y.max())):
            check_label(label, k)  # the one label rule (core.checks), as cfg's and the command line's
        return y


# --------------------------------------------------------------------------------------
# MLP for 2-D toy data
# --------------------------------------------------------------------------------------
@dataclass
class MLPConfig:
    """Size of the 2-D denoiser."""

    dim: int = 2
    hidden: int = 128
    depth: int = 3
    t_dim: int = 32
    time_scale: float = 1.0  # as UNetConfig.time_scale

    def __post_init__(self) -> None:
        for name in ("dim", "hidden", "t_dim"):
            _check_positive_int(self, name)
        self.depth = check_int("depth", self.depth, 0)
        _check_time_scale(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.time_scale == 1.0:
            del d["time_scale"]
        return d


class MLPDenoiser(nn.Module):
    """A residual MLP on (x, sinusoidal t). x: (B, dim), t: (B,) int64 -> eps: (B, dim)."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MLPConfig()
        self.inp = nn.Linear(cfg.dim + cfg.t_dim, cfg.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU())
            for _ in range(cfg.depth)
        )
        self.out = nn.Linear(cfg.hidden, cfg.dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = timestep_embedding(t * self.config.time_scale, self.config.t_dim)  # (B, t_dim)
        h = self.inp(torch.cat([x, temb.to(x.dtype)], dim=-1))  # (B, hidden)
        for blk in self.blocks:
            h = h + blk(h)
        return self.out(h)  # (B, dim)


# --------------------------------------------------------------------------------------
# Building a model from its stored config
# --------------------------------------------------------------------------------------
MODEL_TYPES: dict[str, tuple[type[nn.Module], type]] = {"unet": (UNet, UNetConfig), "mlp": (MLPDenoiser, MLPConfig)}


def build_model(model_type: str, config: dict[str, Any]) -> nn.Module:
    """Build a model by type name ("unet" or "mlp") from a config dict."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; allowed: {', '.join(MODEL_TYPES)}")
    cls, cfg_cls = MODEL_TYPES[model_type]
    try:
        cfg = cfg_cls(**config)
    except TypeError as e:
        raise ValueError(f"bad {model_type} config {config}: {e}") from None
    return cls(cfg)


def model_type_of(model: nn.Module) -> str:
    for name, (cls, _) in MODEL_TYPES.items():
        if isinstance(model, cls):
            return name
    raise ValueError(f"unsupported model class {type(model).__name__}")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def num_classes_of(model: nn.Module) -> int:
    """K of a class-conditional model (its config.num_classes; the label K is "no label"); 0: unconditional."""
    return int(getattr(getattr(model, "config", None), "num_classes", 0) or 0)
