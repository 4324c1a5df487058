"""The GPU run's measuring stages, each a function that returns a dict for the results file (or raises).

- :func:`env_stage`: the device and versions; whether bf16 autocast, channels_last and torch.compile work there,
  each checked against a plain fp32 forward of the shipped UNet (the largest relative difference);
- :func:`tests_stage`: ``pytest -m cuda`` over the files that hold CUDA-only tests, in a child process;
- :func:`throughput_stage`: DDIM images/s at growing batches, fp32 and bf16, until the memory or the stage's time
  runs out; the sampler's overhead against bare model calls (evaluate.throughput, sampler_loops, timing);
- :func:`fid_stage`: the course's classifier FID at DDIM S steps, η = 0, of the GPU-trained model and the shipped
  one from the same x_T (seed by seed), beside the real-data floor at the same n.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.schedules import DEFAULT_SPACING
from ..course.images import save_grid
from ..evaluate.generate import sample_cell, sample_in_batches
from ..evaluate.metrics import FeatureStats, classifier_and_sha, fid_floor, reference_stats
from ..evaluate.records import REPO, model_sha256
from ..evaluate.sampler_loops import bare_calls, ddim_loop, synced
from ..evaluate.speed import load_or_fresh, ratio_record
from ..evaluate.throughput import sampling_throughput, synchronize
from ..evaluate.timing import interleaved_ratio, matched_blocks
from ..nets.models import UNet, UNetConfig
from ..store.device import machine
from ..store.instruments import Stopwatch
from ..store.pretrained import load_any

CUDA_TEST_FILES = ("tests/evaluate/test_generate.py", "tests/cli/test_gpu_run.py")  # where the tests marked cuda live


def device_info(dev: torch.device) -> dict[str, Any]:
    """The device's name, memory and compute capability, torch's CUDA and cuDNN versions, the machine."""
    info: dict[str, Any] = {"device": str(dev), "torch": torch.__version__, "python": platform.python_version(),
                            "machine": machine()}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info |= {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "capability": f"{p.major}.{p.minor}",
                 "multiprocessors": p.multi_processor_count, "cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version(), "tf32_conv": torch.backends.cudnn.allow_tf32,
                 "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    else:
        info["name"] = f"{dev.type.upper()} ({info['machine']['processor']})"
    return info


def _tiny_unet(dev: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4))
    for p in model.parameters():  # the zero-initialised head would predict eps = 0 everywhere
        p.data.add_(0.05 * torch.randn_like(p))
    return model.to(dev).eval()


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a - ref| / max |ref| (NaN if a is not finite)."""
    a = a.float()
    return float((a - ref).abs().max() / ref.abs().max()) if torch.isfinite(a).all() else float("nan")


@torch.no_grad()
def env_stage(dev: torch.device, compile_backend: str, batch: int = 16, tiny: bool = False) -> dict[str, Any]:
    """Device and versions, and the three checks on the shipped UNet (``tiny``: a small fresh one, for --smoke);
    each check's 'works' needs a finite output within its tolerance of fp32 (bf16: 5e-2; channels_last and
    compile: 1e-3, as both only reorder float sums, or 1e-2 where CUDA's convolutions run in TF32, whose 10-bit
    mantissa gives each algorithm its own rounding)."""
    model, src = load_or_fresh("fashion-mnist", dev)[::2] if not tiny else (_tiny_unet(dev), "tiny fresh UNet")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=g).to(dev)  # (B, 1, 28, 28)
    t = torch.randint(0, 1000, (batch,), generator=g).to(dev)  # (B,)
    ref = model(x, t).float()
    reorder = 1e-2 if dev.type == "cuda" and torch.backends.cudnn.allow_tf32 else 1e-3
    checks: dict[str, Any] = {}
    with torch.autocast(dev.type, torch.bfloat16):
        y = model(x, t)
    checks["bf16_autocast"] = {"rel_diff": _rel(y, ref), "dtype": str(y.dtype), "tolerance": 5e-2}
    model.to(memory_format=torch.channels_last)
    checks["channels_last"] = {"rel_diff": _rel(model(x.contiguous(memory_format=torch.channels_last), t), ref),
                               "tolerance": reorder}
    model.to(memory_format=torch.contiguous_format)
    with Stopwatch() as first:
        compiled = torch.compile(model, backend=compile_backend)
        y = compiled(x, t)
        synchronize(dev)
    with Stopwatch() as second:
        compiled(x, t)
        synchronize(dev)
    checks["compile"] = {"backend": compile_backend, "rel_diff": _rel(y, ref), "first_call_s": round(first.seconds, 2),
                         "second_call_ms": round(second.seconds * 1e3, 3), "tolerance": reorder}
    for c in checks.values():
        c["works"] = bool(c["rel_diff"] <= c["tolerance"])  # NaN compares False
    out = {**device_info(dev), "model": src, "checks": checks}
    if not all(c["works"] for c in checks.values()):
        out["status"] = "failed"
    return out


def tests_stage(timeout_s: float, files: tuple[str, ...] = CUDA_TEST_FILES) -> dict[str, Any]:
    """``pytest -m cuda`` over ``files`` in a child process, within ``timeout_s``; its summary line and output."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "-rfEs", *files]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = f"{e.stdout or ''}{e.stderr or ''}\n(timed out after {timeout_s:.0f} s)", None
    out = out.decode() if isinstance(out, bytes) else out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    summary = next((ln.strip("= ") for ln in reversed(lines) if " in " in ln and ("passed" in ln or "skipped" in ln
                   or "failed" in ln or "error" in ln)), lines[-1] if lines else "")
    rec = {"command": " ".join(cmd[1:]), "returncode": rc, "summary": summary, "output_tail": out[-6000:]}
    if rc != 0:
        rec["status"] = "failed"
    return rec


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(e, oom) or "out of memory" in str(e).lower()


def throughput_stage(dev: torch.device, batches: tuple[int, ...], steps: int, seconds: float,
                     overhead_batches: tuple[int, ...], overhead_steps: int, rounds: int,
                     block_s: float) -> dict[str, Any]:
    """Images/s of DDIM with ``steps`` steps at each batch, fp32 then bf16, while a run is predicted to end within
    ``seconds`` of the stage's start and the memory holds (the first out-of-memory ends the sweep); then the
    overhead ratios. Each batch's time is predicted from the last one's, scaled by the batch."""
    model, schedule, src = load_or_fresh("fashion-mnist", dev)
    model = model.to(memory_format=torch.channels_last)
    stage, rows, last = Stopwatch().start(), [], None  # last: (batch, seconds of its two runs)
    stop = None
    for batch in batches:
        for dtype in ("fp32", "bf16"):
            if last is not None and stage.elapsed + last[1] * batch / last[0] > seconds:
                stop = f"batch {batch} {dtype} would pass the stage's {seconds:.0f} s"
                break
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            with Stopwatch() as run:
                try:
                    ips = sampling_throughput(model, schedule, dev, batch=batch, steps=steps, bf16=dtype == "bf16")
                except (RuntimeError, MemoryError) as e:
                    if not _is_oom(e):
                        raise
                    stop = f"out of memory at batch {batch} {dtype}"
                    break
            last = (batch, run.seconds)
            peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
            rows.append({"batch": batch, "dtype": dtype, "images_per_s": ips, "peak_gib": peak})
        if stop:
            break
    if dev.type == "cuda":
        torch.cuda.empty_cache()  # the failed batch's blocks, now that its frames are gone
    over = {}
    for batch in overhead_batches:
        x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1)).to(dev)  # (B, 1, 28, 28)
        a = synced(ddim_loop, dev)(model, schedule, x, overhead_steps)
        b = synced(bare_calls, dev)(model, schedule, x, overhead_steps)
        block_a, block_b, reps = matched_blocks(a, b, block_s)
        r = interleaved_ratio(f"overhead_batch{batch}", block_a, block_b, rounds)
        call_ms = statistics.median(r.b_s) / (reps * overhead_steps) * 1e3
        over[str(batch)] = ratio_record(r) | {"runs_per_round": reps, "model_call_ms": call_ms}
    return {"model": src, "steps": steps, "rows": rows, "stopped": stop or "all batches measured",
            "overhead": {"steps": overhead_steps, "by_batch": over}}


def _fid_cells(model: nn.Module, schedule: Any, dev: torch.device, steps: int, n: int, batch: int,
               seeds: tuple[int, ...], ref: FeatureStats, clf: nn.Module) -> list[float]:
    out = []
    for seed in seeds:
        feats, _ = sample_cell(model, schedule, 0.0, steps, n, batch, seed, DEFAULT_SPACING, str(dev), clf)
        out.append(FeatureStats.of(feats).distance(ref))
    return out


def fid_stage(dev: torch.device, model_path: str | Path, steps: int, n: int, batch: int, seeds: tuple[int, ...],
              samples: Path, floor: bool = True) -> dict[str, Any]:
    """FID (classifier features, against the test set's shipped statistics) of the GPU-trained model and of the
    shipped ``fashion-mnist`` at DDIM ``steps`` steps, η = 0, n samples per seed, batch b of seed s from the same
    x_T for both; their paired differences; the floor at n; a PNG grid of 64 samples of the GPU-trained model."""
    clf, clf_sha = classifier_and_sha()
    ref = reference_stats("test")
    models = {"gpu": load_any(str(model_path), dev), "shipped": load_any("fashion-mnist", dev)}
    fids, info = {}, {}
    for name, (model, schedule, meta, where) in models.items():
        fids[name] = _fid_cells(model, schedule, dev, steps, n, batch, seeds, ref, clf)
        info[name] = {"where": where, "params": sum(p.numel() for p in model.parameters()),
                      "sha256": model_sha256(model), "train_steps": meta.get("steps"), "device": meta.get("device"),
                      "batch_size": (meta.get("train_config") or {}).get("batch_size")}
    diff = [a - b for a, b in zip(fids["gpu"], fids["shipped"])]

    def spread(v: list[float]) -> dict[str, float]:
        return {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else float("nan")}

    model, schedule, _, _ = models["gpu"]
    grid = sample_in_batches(model, schedule, min(64, n), min(64, n), steps=steps, seed=0)
    save_grid(grid, samples)
    out = {"steps": steps, "eta": 0.0, "spacing": DEFAULT_SPACING, "n": n, "batch": batch, "seeds": list(seeds),
           "classifier_sha256": clf_sha, "fid": fids, "models": info, "gpu_minus_shipped": diff,
           "summary": {k: spread(v) for k, v in (*fids.items(), ("gpu_minus_shipped", diff))},
           "gpu_lower_in_every_seed": all(d < 0 for d in diff), "equal_size": info["gpu"]["params"] ==
           info["shipped"]["params"], "samples_png": str(samples)}
    if floor:
        out["floor"] = fid_floor(n)  # real held-out images against the test set, same n
    return out
