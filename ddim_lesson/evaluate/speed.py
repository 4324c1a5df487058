"""Speed of the package's samplers, as ratios measured in one run (A and B interleaved, median of rounds;
see :mod:`~ddim_lesson.evaluate.timing`), and the report that ``benchmarks/results/speed.json`` holds.

    (a) sampler overhead: ddim_sample with S steps / S bare model calls on the same batch
        (targets: <= 1.03 with the shipped UNet, <= 1.10 with the 2-D MLP);
    (b) our DDIM loop / diffusers' DDIMScheduler loop, same model, batch and steps (target <= 0.9),
        for the MLP also at small batches (``mlp_sweep``), where the loop's own work is a larger share;
    (c) DDPM 1000 steps / DDIM 50 steps: the wall-time speedup, beside the FIDs of the committed Table 1;
    on CUDA also images/s at batch 1024, training throughput, bf16 and torch.compile
    (:mod:`~ddim_lesson.evaluate.throughput`).

The targets are judged on the wall clock; the ratio of this process's CPU time is reported beside it.
What is timed is in :mod:`~ddim_lesson.evaluate.sampler_loops`; the command is ``benchmarks/speed.py``
(:mod:`~ddim_lesson.cli.speed_script`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.checks import check_float, check_int
from ..core.fields import check_fields, device_field, rounds_field
from ..core.schedules import NoiseSchedule
from ..nets.models import MLPConfig, MLPDenoiser, UNet, UNetConfig
from ..store.device import machine, pick_device
from ..store.pretrained import load_any
from .generate import sample_shape
from .records import REPO
from .sampler_loops import bare_calls, ddim_loop, ddpm_loop, diffusers_loop, sampler_cost_per_step, synced
from .throughput import Loss, sampling_throughput, training_throughput
from .timing import Ratio, interleaved_ratio, matched_blocks

Log = Callable[[str], None]
Models = dict[str, tuple[nn.Module, NoiseSchedule]]
RESULTS = REPO / "benchmarks" / "results"
QUICK = {"rounds": 3, "unet_batch": 8, "unet_steps": 4, "mlp_batch": 256, "mlp_steps": 10, "ddpm_batch": 1,
         "ddpm_rounds": 1, "block_s": 0.0}  # --quick: a smoke test, not a result


@dataclass
class SpeedConfig:
    """What the speed benchmark times, and on what. ``quick`` replaces the sizes by :data:`QUICK`."""

    rounds: int = rounds_field(11)  # of each ratio in (a), (b)
    unet_batch: int = field(default=32, metadata={"help": "batch of the shipped UNet's timings"})
    unet_steps: int = field(default=10, metadata={"help": "S of the UNet's timings"})
    mlp_batch: int = field(default=512, metadata={"help": "the notebooks draw 256-500 points"})
    mlp_steps: int = field(default=50, metadata={"help": "S of the 2-D MLP's timings"})
    mlp_sweep: tuple[int, ...] = field(default=(1, 32), metadata={
        "help": "also compare with diffusers at these MLP batches (comma-separated; '' for none)"})
    ddpm_batch: int = field(default=4, metadata={"help": "batch of (c), the first images of the UNet's batch"})
    ddpm_rounds: int = field(default=2, metadata={"help": "rounds of (c): DDPM's 1000 steps are slow on a CPU"})
    block_s: float = field(default=0.5, metadata={
        "help": "in (a), (b) a timed block repeats a run until it lasts this many seconds (a 60 ms run alone is "
                "within a busy machine's jitter)"})
    table1: str = field(default=str(RESULTS / "table1.json"), metadata={"help": "where to read FIDs for (c)"})
    device: str = device_field()
    compile: bool = field(default=False, metadata={"help": "on CUDA, also time torch.compile"})
    json: str = field(default="", metadata={"help": "also write the measurements to this JSON file"})
    quick: bool = field(default=False, metadata={"help": "3 rounds, smaller batches: a smoke test, not a result"})

    def __post_init__(self) -> None:
        if self.quick:
            vars(self).update(QUICK)
            self.mlp_sweep = tuple(self.mlp_sweep)[:1]
        check_fields(self)  # rounds
        for name in ("unet_batch", "unet_steps", "mlp_batch", "mlp_steps", "ddpm_rounds"):
            setattr(self, name, check_int(name, getattr(self, name), 1))
        self.ddpm_batch = check_int("ddpm_batch", self.ddpm_batch, 1)
        if self.ddpm_batch > self.unet_batch:  # (c) times the first ddpm_batch inputs of the UNet's batch
            raise ValueError(f"ddpm_batch must be <= unet_batch, got ddpm_batch={self.ddpm_batch}, "
                             f"unet_batch={self.unet_batch}")
        self.mlp_sweep = tuple(check_int("each of mlp_sweep", b, 1) for b in self.mlp_sweep)
        self.block_s = check_float("block_s", self.block_s, 0.0, 10.0)


# -- models and inputs ---------------------------------------------------------------------------
def load_or_fresh(name: str, device: torch.device | str = "cpu") -> tuple[nn.Module, NoiseSchedule, str]:
    """The shipped model if its weights exist, otherwise a fresh one of the same size (speed is the same)."""
    try:
        model, schedule, _, _ = load_any(name, device)
        return model, schedule, f"pretrained('{name}')"
    except (FileNotFoundError, ValueError):
        model = UNet(UNetConfig()) if name == "fashion-mnist" else MLPDenoiser(MLPConfig())
        src = f"fresh {type(model).__name__} (no shipped '{name}' weights yet)"
        return model.to(device).eval(), NoiseSchedule.linear(), src


def table1_fids(path: str) -> dict[str, Any] | None:
    """FIDs of DDIM (η = 0, S = 50) and DDPM (η = 1, S = 1000) from a Table 1 file, or None if it lacks them."""
    try:
        cells = json.loads(Path(path).read_text())["cells"]
        ddim, ddpm = cells["eta=0.0 S=50"], cells["eta=1.0 S=1000"]
        return {"ddim50": round(ddim["fid"], 2), "ddpm1000": round(ddpm["fid"], 2), "n": ddim["n"]}
    except (OSError, KeyError, TypeError, ValueError):
        return None


def verdict(value: float, target: float, lower_is_better: bool = True) -> str:
    """'target <= 1.03: met' or '... MISSED'."""
    ok = value <= target if lower_is_better else value >= target
    return f"target {'<=' if lower_is_better else '>='} {target}: {'met' if ok else 'MISSED'}"


def ratio_record(r: Ratio, target: float | None = None) -> dict[str, Any]:
    """A ratio as speed.json stores it: median, target (if any), per-round ratios, A's and B's seconds, CPU median."""
    head = {"median": r.median} | ({"target": target} if target is not None else {})
    return head | {"rounds": r.ratios, "a_s": r.a_s, "b_s": r.b_s, "median_cpu": r.median_cpu}


# -- the benchmark -------------------------------------------------------------------------------
def new_report(cfg: SpeedConfig, device: torch.device) -> dict[str, Any]:
    """The report's head: the device's name, torch, its threads, the config; ratios come later."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{device.type.upper()} ({machine()['processor']})"
    return {"device": name, "torch": torch.__version__, "threads": torch.get_num_threads(), "args": asdict(cfg),
            "ratios": {}}


def run_speed(cfg: SpeedConfig, log: Log = print, models: Models | None = None,
              train_loss: Loss | None = None) -> dict[str, Any]:
    """Run (a), (b), (c), and on CUDA the throughputs; ``log`` each line; return the report (speed.json).

    ``models`` may replace the timed models: {"unet": (model, schedule), "mlp": (model, schedule)}
    (a test passes small ones); by default the shipped fashion-mnist UNet and two-moons MLP.
    ``train_loss``: what a training step computes, by default ``core.losses.diffusion_loss``.
    """
    dev = pick_device(cfg.device)
    report = new_report(cfg, dev)
    m = machine()
    log(f"device: {report['device']}; torch {m['torch']}, {m['torch_threads']} threads, {m['cpu_count']} CPUs, "
        f"{m['platform']}\n")
    ratio_benchmarks(cfg, report, dev, log, models)
    if dev.type == "cuda":
        cuda_benchmarks(cfg, report, dev, log, train_loss)
    else:
        log("\nno CUDA device: images/s at batch 1024, training throughput, bf16 and --compile not measured")
    return report


def ratio_benchmarks(cfg: SpeedConfig, report: dict[str, Any], device: torch.device, log: Log = print,
                     models: Models | None = None) -> None:
    """(a), (b), (c) on ``device``, into ``report``; off the CPU every timed run ends with a synchronize."""
    unet, sched_u, unet_src = _model("fashion-mnist", "unet", device, models)
    mlp, sched_m, mlp_src = _model("two-moons", "mlp", device, models)
    g = torch.Generator().manual_seed(0)
    x_img = torch.randn(cfg.unet_batch, *sample_shape(unet), generator=g).to(device)  # (B, 1, 28, 28)
    x_2d = torch.randn(cfg.mlp_batch, *sample_shape(mlp), generator=g).to(device)  # (B, 2)
    log(f"UNet: {unet_src}, batch {cfg.unet_batch}, S = {cfg.unet_steps}")
    log(f"MLP:  {mlp_src}, batch {cfg.mlp_batch}, S = {cfg.mlp_steps}\n")
    ours, bare, theirs = synced(ddim_loop, device), synced(bare_calls, device), synced(diffusers_loop, device)
    u, m = (unet, sched_u, x_img, cfg.unet_steps), (mlp, sched_m, x_2d, cfg.mlp_steps)
    def row(label: str, target: float, name: str, a: Callable[[], object], b: Callable[[], object]) -> Ratio:
        block_a, block_b, reps = matched_blocks(a, b, cfg.block_s)
        r = interleaved_ratio(name, block_a, block_b, cfg.rounds)
        log(f"{label} ({reps} run{'s' if reps > 1 else ''} per round): {r.summary()}  {verdict(r.median, target)}")
        report["ratios"][name] = ratio_record(r, target) | {"runs_per_round": reps}
        return r

    over_u = row("(a) overhead, UNet: ddim_sample / bare calls", 1.03, "overhead_unet", ours(*u), bare(*u))
    over_m = row("(a) overhead, MLP:  ddim_sample / bare calls", 1.10, "overhead_mlp", ours(*m), bare(*m))
    row("(b) ours / diffusers DDIMScheduler, UNet", 0.9, "vs_diffusers_unet", ours(*u), theirs(*u))
    row("(b) ours / diffusers DDIMScheduler, MLP ", 0.9, "vs_diffusers_mlp", ours(*m), theirs(*m))
    for batch in cfg.mlp_sweep:  # (b) again at smaller MLP batches, where the loop's own work is exposed
        mb = (mlp, sched_m, torch.randn(batch, *sample_shape(mlp), generator=g).to(device), cfg.mlp_steps)
        row(f"(b) ours / diffusers DDIMScheduler, MLP batch {batch}", 0.9, f"vs_diffusers_mlp_batch{batch}",
            ours(*mb), theirs(*mb))
    for label, (_, sched, x, steps), r in (("UNet", u, over_u), ("MLP", m, over_m)):
        per_call = statistics.median(r.b_s) / (steps * report["ratios"][r.name]["runs_per_round"])
        _outside_model(label, x, sched, steps, per_call, cfg.rounds, report, log)
    same = (ddim_loop(*m)() - diffusers_loop(*m)()).abs().max()
    log(f"    (same sampler: max |ours - diffusers| on the MLP's samples = {float(same):.2e})")
    report["max_abs_diff_vs_diffusers"] = float(same)
    _ddpm_speedup(cfg, unet, sched_u, x_img[: cfg.ddpm_batch], report, log)


def _model(name: str, key: str, device: torch.device,
           models: Models | None) -> tuple[nn.Module, NoiseSchedule, str]:
    if models and key in models:
        model, schedule = models[key]
        return model.to(device).eval(), schedule, f"given {type(model).__name__}"
    return load_or_fresh(name, device)


def _outside_model(label: str, x: torch.Tensor, schedule: NoiseSchedule, steps: int, call: float, rounds: int,
                   report: dict[str, Any], log: Log) -> None:
    """The stub-model estimate of each loop's own work per step, beside one model call of ``call`` seconds."""
    own = sampler_cost_per_step(x, schedule, steps, rounds)
    theirs = sampler_cost_per_step(x, schedule, steps, rounds, diffusers_loop)
    log(f"    work outside the model, {label} batch (stub model): ours {own * 1e6:.0f} µs/step "
        f"= {own / call:.2%} of one {label} call ({call * 1e3:.2f} ms), diffusers {theirs * 1e6:.0f} µs/step; "
        f"so ours/diffusers should be about {(call + own) / (call + theirs):.3f} with this model and batch")
    report.setdefault("outside_model_seconds_per_step", {})[label] = {"ours": own, "diffusers": theirs,
                                                                      "model_call": call}


def _ddpm_speedup(cfg: SpeedConfig, unet: nn.Module, schedule: NoiseSchedule, x: torch.Tensor,
                  report: dict[str, Any], log: Log) -> None:
    """(c): DDPM over all T steps / DDIM with 50, on x (B, C, H, W), with Table 1's FIDs beside it."""
    dev = x.device
    r = interleaved_ratio("ddpm1000_over_ddim50", synced(ddpm_loop, dev)(unet, schedule, x),
                          synced(ddim_loop, dev)(unet, schedule, x, 50), cfg.ddpm_rounds, warmup=0)
    log(f"(c) DDPM 1000 steps / DDIM 50 steps, UNet batch {cfg.ddpm_batch}: speedup {r.summary()}")
    report["ratios"][r.name] = ratio_record(r)
    fids = table1_fids(cfg.table1)
    if fids:
        log(f"    at FID {fids['ddim50']} (DDIM η=0, S=50) vs {fids['ddpm1000']} (DDPM, η=1, S=1000), "
            f"n={fids['n']}, from {cfg.table1}")
        report["fids"] = fids
    else:
        log(f"    (no FIDs: {cfg.table1} has no S=50 η=0 and S=1000 η=1 cells yet)")


def cuda_benchmarks(cfg: SpeedConfig, report: dict[str, Any], device: torch.device, log: Log = print,
                    train_loss: Loss | None = None) -> None:
    """Throughput on a GPU: sampling at batch 1024 and training at batch 128 (``train_loss``, by default
    ``core.losses.diffusion_loss``), fp32 vs bf16 vs compiled."""
    unet, sched, _ = load_or_fresh("fashion-mnist", device)
    unet = unet.to(memory_format=torch.channels_last)
    cuda = report.setdefault("cuda", {})
    variants = {"fp32": (unet, False), "bf16": (unet, True)} | (
        {"bf16+compile": (torch.compile(unet), True)} if cfg.compile else {})
    for name, (model, bf16) in variants.items():
        ips = sampling_throughput(model, sched, device, batch=1024, steps=50, bf16=bf16)
        log(f"sampling, batch 1024, DDIM 50 steps, {name}: {ips:,.0f} images/s")
        cuda[f"sample_images_per_s_{name}"] = ips
    for name, bf16, comp in (("fp32", False, False), ("bf16", True, False)) + (
            (("bf16+compile", True, True),) if cfg.compile else ()):
        ips = training_throughput(device, train_loss, bf16=bf16, compile_=comp)
        log(f"training, batch 128, {name}: {ips:,.0f} images/s")
        cuda[f"train_images_per_s_{name}"] = ips
