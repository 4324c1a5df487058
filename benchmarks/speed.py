"""Speed of the package's samplers, as ratios measured in one run (A and B interleaved, median of rounds).

    python benchmarks/speed.py            # a few minutes on a 2-core CPU
    python benchmarks/speed.py --quick    # fewer rounds and smaller batches (a smoke test)

It prints:
  (a) sampler overhead: ddim_sample with S steps / S bare model calls on the same batch
      (targets: <= 1.03 with the shipped UNet, <= 1.10 with the 2-D MLP);
  (b) our DDIM loop / diffusers' DDIMScheduler loop, same model, batch and steps (target <= 0.9),
      for the MLP also at small batches (--mlp-sweep), where the loop's own work is a larger share;
  (c) DDPM 1000 steps / DDIM 50 steps: the wall-time speedup, beside the FIDs of the committed table;
  on CUDA also images/s at batch 1024, training throughput, and the effect of bf16 and torch.compile.
Each round runs A then B, or B then A (alternating), so slow drifts of a shared machine cancel.
The targets are judged on the wall clock; the ratio of this process's CPU time is printed beside it,
because on a machine shared with other jobs the wall clock also counts time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ddim_lesson import NoiseSchedule, ddim_sample, ddim_timesteps, ddpm_sample
from ddim_lesson.course.env import pick_threads
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser, UNet, UNetConfig

RESULTS = Path(__file__).parent / "results"


@dataclass
class Ratio:
    """time(A) / time(B) per round and their median, on the wall clock and on this process's CPU clock."""

    name: str
    median: float  # wall clock
    ratios: list[float] = field(default_factory=list)
    a_s: list[float] = field(default_factory=list)  # wall seconds of A per round
    b_s: list[float] = field(default_factory=list)
    median_cpu: float = float("nan")  # CPU time of this process: what the work costs, without the waits
    ratios_cpu: list[float] = field(default_factory=list)  # on a machine shared with other jobs


def interleaved_ratio(
    name: str,
    a: Callable[[], object],
    b: Callable[[], object],
    rounds: int = 5,
    warmup: int = 1,
    timer: Callable[[], float] = time.perf_counter,
    cpu_timer: Callable[[], float] = time.process_time,
) -> Ratio:
    """Time A and B in the same rounds, A first in even rounds and B first in odd ones; median of time(A)/time(B)."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got rounds={rounds}, warmup={warmup}")
    for _ in range(warmup):
        a()
        b()
    out = Ratio(name, float("nan"))
    for r in range(rounds):
        wall, cpu = {}, {}
        for key in ("ab" if r % 2 == 0 else "ba"):
            fn = a if key == "a" else b
            t0, c0 = timer(), cpu_timer()
            fn()
            wall[key], cpu[key] = timer() - t0, cpu_timer() - c0
        out.a_s.append(wall["a"])
        out.b_s.append(wall["b"])
        out.ratios.append(wall["a"] / wall["b"])
        out.ratios_cpu.append(cpu["a"] / cpu["b"] if cpu["b"] > 0 else float("nan"))
    out.median = statistics.median(out.ratios)
    out.median_cpu = statistics.median(out.ratios_cpu)
    return out


# -- the things being timed ----------------------------------------------------------------------
def bare_calls(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, steps: int) -> Callable[[], None]:
    """S model calls on the same batch at the sampler's timesteps: the floor any sampler pays."""
    ts = [t.expand(x.shape[0]) for t in ddim_timesteps(schedule.T, steps).to(x.device)]  # S × (B,)

    @torch.no_grad()
    def run() -> None:
        for t in ts:
            model(x, t)

    return run


def sampler_cost_per_step(x: torch.Tensor, schedule: NoiseSchedule, steps: int, rounds: int,
                          sync: Callable = lambda f: f, loop: Callable | None = None) -> float:
    """Seconds per step that a sampling loop (default: ddim_sample) spends outside the model, timed with a
    stub model that returns a fixed eps, minus the stub's own calls. Setup is included, spread over the steps.
    This resolves what an end-to-end ratio cannot on a noisy machine."""
    eps = torch.zeros_like(x)

    def stub(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return eps

    reps = 20  # many runs per round: one run is too short to time alone
    a, b = sync(loop or ours)(stub, schedule, x, steps), sync(bare_calls)(stub, schedule, x, steps)
    r = interleaved_ratio("own", lambda: [a() for _ in range(reps)], lambda: [b() for _ in range(reps)], rounds)
    return statistics.median(ta - tb for ta, tb in zip(r.a_s, r.b_s)) / (reps * steps)


def ours(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, steps: int) -> Callable[[], torch.Tensor]:
    return lambda: ddim_sample(model, schedule, x, steps=steps, eta=0.0)


def diffusers_loop(
    model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, steps: int
) -> Callable[[], torch.Tensor]:
    """The usual diffusers DDIM loop, configured to be the same sampler as ours (trailing, clip, ᾱ_final = 1)."""
    from diffusers import DDIMScheduler

    p = schedule.params
    sch = DDIMScheduler(num_train_timesteps=schedule.T, beta_start=p["beta_start"], beta_end=p["beta_end"],
                        beta_schedule="linear", clip_sample=True, set_alpha_to_one=True,
                        timestep_spacing="trailing", prediction_type="epsilon")

    @torch.no_grad()
    def run() -> torch.Tensor:
        sch.set_timesteps(steps, device=x.device)
        xt = x
        for t in sch.timesteps:
            eps = model(xt, t.expand(x.shape[0]))
            xt = sch.step(eps, t, xt, eta=0.0, use_clipped_model_output=True).prev_sample
        return xt

    return run


# -- models --------------------------------------------------------------------------------------
def load_or_fresh(name: str) -> tuple[nn.Module, NoiseSchedule, str]:
    """The shipped model if its weights exist, otherwise a fresh one of the same size (speed is the same)."""
    from ddim_lesson import pretrained

    try:
        model, schedule = pretrained(name)
        return model, schedule, f"pretrained('{name}')"
    except (FileNotFoundError, ValueError):
        model = UNet(UNetConfig()) if name == "fashion-mnist" else MLPDenoiser(MLPConfig())
        return model.eval(), NoiseSchedule.linear(), f"fresh {type(model).__name__} (no shipped '{name}' weights yet)"


def _fmt(r: Ratio) -> str:
    spread = f"[{min(r.ratios):.3f} .. {max(r.ratios):.3f}]"
    return (f"{r.median:.3f}  (wall; rounds {spread}; A {statistics.median(r.a_s):.3f} s, "
            f"B {statistics.median(r.b_s):.3f} s; CPU-time ratio {r.median_cpu:.3f})")


def _verdict(value: float, target: float, lower_is_better: bool = True) -> str:
    ok = value <= target if lower_is_better else value >= target
    return f"target {'<=' if lower_is_better else '>='} {target}: {'met' if ok else 'MISSED'}"


def ratio_benchmarks(a: argparse.Namespace, report: dict, device: torch.device) -> None:
    """(a), (b), (c) on ``device``; on CUDA every timed call ends with a synchronize."""
    unet, sched_u, unet_src = load_or_fresh("fashion-mnist")
    mlp, sched_m, mlp_src = load_or_fresh("two-moons")
    unet, mlp = unet.to(device), mlp.to(device)
    g = torch.Generator().manual_seed(0)
    x_img = torch.randn(a.unet_batch, 1, 28, 28, generator=g).to(device)
    x_2d = torch.randn(a.mlp_batch, 2, generator=g).to(device)
    x_small = x_img[: a.ddpm_batch]
    print(f"UNet: {unet_src}, batch {a.unet_batch}, S = {a.unet_steps}")
    print(f"MLP:  {mlp_src}, batch {a.mlp_batch}, S = {a.mlp_steps}\n")
    sync = _synced if device.type == "cuda" else (lambda f: f)
    ours_, bare_, diff_ = sync(ours), sync(bare_calls), sync(diffusers_loop)

    def ddpm(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: ddpm_sample(model, schedule, x)

    rows = [
        ("(a) overhead, UNet: ddim_sample / bare calls", 1.03,
         interleaved_ratio("overhead_unet", ours_(unet, sched_u, x_img, a.unet_steps),
                           bare_(unet, sched_u, x_img, a.unet_steps), a.rounds)),
        ("(a) overhead, MLP:  ddim_sample / bare calls", 1.10,
         interleaved_ratio("overhead_mlp", ours_(mlp, sched_m, x_2d, a.mlp_steps),
                           bare_(mlp, sched_m, x_2d, a.mlp_steps), a.rounds)),
        ("(b) ours / diffusers DDIMScheduler, UNet", 0.9,
         interleaved_ratio("vs_diffusers_unet", ours_(unet, sched_u, x_img, a.unet_steps),
                           diff_(unet, sched_u, x_img, a.unet_steps), a.rounds)),
        ("(b) ours / diffusers DDIMScheduler, MLP ", 0.9,
         interleaved_ratio("vs_diffusers_mlp", ours_(mlp, sched_m, x_2d, a.mlp_steps),
                           diff_(mlp, sched_m, x_2d, a.mlp_steps), a.rounds)),
    ]
    for batch in a.mlp_sweep:  # (b) again at smaller MLP batches, where the loop's own work is exposed
        x_b, reps = torch.randn(batch, 2, generator=g).to(device), max(1, 64 // batch)
        mine, theirs = ours_(mlp, sched_m, x_b, a.mlp_steps), diff_(mlp, sched_m, x_b, a.mlp_steps)
        rows.append((f"(b) ours / diffusers DDIMScheduler, MLP batch {batch} ({reps} runs per round)", 0.9,
                     interleaved_ratio(f"vs_diffusers_mlp_batch{batch}", lambda f=mine, k=reps: [f() for _ in range(k)],
                                       lambda f=theirs, k=reps: [f() for _ in range(k)], a.rounds)))
    for label, target, r in rows:
        print(f"{label}: {_fmt(r)}  {_verdict(r.median, target)}")
        report["ratios"][r.name] = {"median": r.median, "target": target, "rounds": r.ratios,
                                    "a_s": r.a_s, "b_s": r.b_s, "median_cpu": r.median_cpu}
    for label, x, steps, r in (("UNet", x_img, a.unet_steps, rows[0][2]), ("MLP", x_2d, a.mlp_steps, rows[1][2])):
        own = sampler_cost_per_step(x, sched_u, steps, a.rounds, sync)
        theirs = sampler_cost_per_step(x, sched_u, steps, a.rounds, sync, diffusers_loop)
        call = statistics.median(r.b_s) / steps
        print(f"    work outside the model, {label} batch (stub model): ours {own * 1e6:.0f} µs/step "
              f"= {own / call:.2%} of one {label} call ({call * 1e3:.2f} ms), diffusers {theirs * 1e6:.0f} µs/step; "
              f"so ours/diffusers should be about {(call + own) / (call + theirs):.3f} with this model and batch")
        report.setdefault("outside_model_seconds_per_step", {})[label] = {"ours": own, "diffusers": theirs,
                                                                          "model_call": call}
    same = (ours(mlp, sched_m, x_2d, a.mlp_steps)() - diffusers_loop(mlp, sched_m, x_2d, a.mlp_steps)()).abs().max()
    print(f"    (same sampler: max |ours - diffusers| on the MLP's samples = {float(same):.2e})")
    report["max_abs_diff_vs_diffusers"] = float(same)

    r = interleaved_ratio("ddpm1000_over_ddim50", sync(ddpm)(unet, sched_u, x_small),
                          ours_(unet, sched_u, x_small, 50), a.ddpm_rounds, warmup=0)
    print(f"(c) DDPM 1000 steps / DDIM 50 steps, UNet batch {a.ddpm_batch}: speedup {_fmt(r)}")
    report["ratios"][r.name] = {"median": r.median, "rounds": r.ratios, "a_s": r.a_s, "b_s": r.b_s,
                                "median_cpu": r.median_cpu}
    fids = _table1_fids(a.table1)
    if fids:
        print(f"    at FID {fids['ddim50']} (DDIM η=0, S=50) vs {fids['ddpm1000']} (DDPM, η=1, S=1000), "
              f"n={fids['n']}, from {a.table1}")
        report["fids"] = fids
    else:
        print(f"    (no FIDs: {a.table1} has no S=50 η=0 and S=1000 η=1 cells yet)")


def _synced(make: Callable[..., Callable[[], object]]) -> Callable[..., Callable[[], object]]:
    def wrapped(*args: object) -> Callable[[], object]:
        fn = make(*args)

        def run() -> object:
            out = fn()
            torch.cuda.synchronize()
            return out

        return run

    return wrapped


def _table1_fids(path: str) -> dict | None:
    try:
        cells = json.loads(Path(path).read_text())["cells"]
        ddim, ddpm = cells["eta=0.0 S=50"], cells["eta=1.0 S=1000"]
        return {"ddim50": round(ddim["fid"], 2), "ddpm1000": round(ddpm["fid"], 2), "n": ddim["n"]}
    except (OSError, KeyError, ValueError):
        return None


def cuda_benchmarks(a: argparse.Namespace, report: dict) -> None:
    """Throughput on a GPU: sampling at batch 1024 and training, fp32 vs bf16 vs compiled."""
    unet, sched, _ = load_or_fresh("fashion-mnist")
    dev = torch.device("cuda")
    unet = unet.to(dev).to(memory_format=torch.channels_last)
    x = torch.randn(1024, 1, 28, 28, device=dev)
    variants = {"fp32": (unet, False), "bf16": (unet, True)}
    if a.compile:
        variants["bf16+compile"] = (torch.compile(unet), True)
    for name, (m, bf16) in variants.items():
        def sample(m: nn.Module = m, bf16: bool = bf16) -> None:
            with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
                ddim_sample(m, sched, x, steps=50)
            torch.cuda.synchronize()

        sample()  # warmup (and compile)
        t0 = time.perf_counter()
        sample()
        ips = 1024 / (time.perf_counter() - t0)
        print(f"sampling, batch 1024, DDIM 50 steps, {name}: {ips:,.0f} images/s")
        report.setdefault("cuda", {})[f"sample_images_per_s_{name}"] = ips
    for name, bf16, comp in (("fp32", False, False), ("bf16", True, False)) + ((("bf16+compile", True, True),)
                                                                              if a.compile else ()):
        ips = _train_throughput(dev, bf16, comp)
        print(f"training, batch 128, {name}: {ips:,.0f} images/s")
        report["cuda"][f"train_images_per_s_{name}"] = ips


def _train_throughput(dev: torch.device, bf16: bool, compile_: bool, steps: int = 30) -> float:
    from ddim_lesson.train.loop import diffusion_loss

    model = UNet(UNetConfig()).to(dev).to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sched, g = NoiseSchedule.linear(), torch.Generator(device=dev).manual_seed(0)
    x0 = torch.randn(128, 1, 28, 28, device=dev)

    def step() -> None:
        with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
            loss = diffusion_loss(fwd, x0, sched, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * 128 / (time.perf_counter() - t0)


def _batches(s: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in s.split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes like 1,32, got {s!r}") from None
    if any(b < 1 for b in out):
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {s!r}")
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--unet-batch", type=int, default=32)
    p.add_argument("--unet-steps", type=int, default=10)
    p.add_argument("--mlp-batch", type=int, default=512, help="the notebooks draw 256-500 points")
    p.add_argument("--mlp-steps", type=int, default=50)
    p.add_argument("--mlp-sweep", type=_batches, default=(1, 32),
                   help="also compare with diffusers at these MLP batches (comma-separated; '' for none)")
    p.add_argument("--ddpm-batch", type=int, default=4)
    p.add_argument("--ddpm-rounds", type=int, default=2, help="rounds of (c): DDPM's 1000 steps are slow on a CPU")
    p.add_argument("--table1", default=str(RESULTS / "table1.json"), help="where to read FIDs for (c)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--compile", action="store_true", help="on CUDA, also time torch.compile")
    p.add_argument("--json", default="", help="also write the measurements to this JSON file")
    p.add_argument("--quick", action="store_true", help="3 rounds, smaller batches: a smoke test, not a result")
    a = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # progress shows when piped
    if a.quick:
        a.rounds, a.unet_batch, a.unet_steps, a.mlp_batch, a.mlp_steps, a.ddpm_batch, a.ddpm_rounds = (
            3, 8, 4, 256, 10, 1, 1)
        a.mlp_sweep = a.mlp_sweep[:1]
    print(f"torch uses {pick_threads().reason}")
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    print(f"device: {device}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.platform()}\n")
    report: dict = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "args": vars(a), "ratios": {}}
    t0 = time.perf_counter()
    ratio_benchmarks(a, report, dev)
    if dev.type == "cuda":
        cuda_benchmarks(a, report)
    else:
        print("\nno CUDA device: images/s at batch 1024, training throughput, bf16 and --compile not measured")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
