"""``ddim-lesson gpu-run``: one prepared run for a lent GPU, in one call, inside a global time budget.

Stages, in order (gpu_stages, gpu_train); each is timed, a failure is recorded with its traceback and the next
stage still runs, and the results are saved after every stage, so a call cut short still returns them:

    env         device and versions; bf16 autocast, channels_last and torch.compile checked against fp32
    cuda_tests  pytest -m cuda (the tests that only mean something on CUDA)
    throughput  DDIM images/s at 28×28, batch sizes up to the memory, fp32 and bf16; sampler / bare model calls
    train       the fashion-mnist recipe scaled to the GPU, sized to the time left, stopping itself
    fid         the course's FID at DDIM 50 of its EMA weights against the shipped CPU model, seed by seed

Everything lands in ``--out``: gpu_run.json (results with provenance), gpu_run.md (a model-card section),
the exported model (gpu-fashion-mnist.safetensors + .json) and samples.png. ``--smoke`` runs every stage tiny on
the CPU in about a minute. ``--carry DIR`` (on the machine with the data, before the GPU call) copies what the
GPU machine cannot fetch into DIR and stops. The device command is in benchmarks/gpu_run.sh.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.checks import check_float, check_int
from ..core.fields import device_field
from ..evaluate.records import git_commit, save_results
from ..store.data import IDX_FILES, DataNotFoundError, fashion_mnist_location, fashion_mnist_search, load_images
from ..store.device import announce_threads, machine, pick_device, pick_threads
from ..store.instruments import Stopwatch, now
from ..train.train_config import TrainConfig
from .flags import dataclass_from_args
from .gpu_card import markdown
from .gpu_stages import env_stage, fid_stage, tests_stage, throughput_stage
from .gpu_train import train_stage

MODEL_NAME = "gpu-fashion-mnist"
SMOKE = {"budget_s": 300.0, "compile_backend": "eager", "check_model": "tiny", "test_timeout_s": 120.0,
         "throughput_batches": (2, 4), "throughput_steps": 2, "throughput_s": 10.0, "overhead_batches": (2,),
         "overhead_steps": 2, "overhead_rounds": 1, "block_s": 0.0, "train_batch_size": 4, "train_lr": 1e-3,
         "train_base_channels": 8, "train_channel_mults": (1, 2), "train_warmup": 4, "train_n_images": 32,
         "train_max_steps": 6, "train_min_s": 10.0, "reserve_s": 30.0, "fid_n": 8, "fid_seeds": (0,), "fid_steps": 2,
         "fid_batch": 8}  # every stage tiny, on the CPU: a test of the run, not a result


@dataclass
class GpuRunConfig:
    """One prepared run for a lent GPU: checks, CUDA tests, throughput, a time-boxed training run and its FID."""

    out: str = field(default="runs/gpu-run", metadata={"help": "folder for the results ($OUT on the GPU machine)"})
    budget_s: float = field(default=480.0, metadata={"help": "seconds for all stages together; each stage respects "
                                                               "what is left, training stops itself before it ends"})
    smoke: bool = field(default=False, metadata={"help": "every stage tiny, on the CPU (about a minute): a test"})
    carry: str = field(default="", metadata={"help": "only copy the Fashion-MNIST files and the commit into this "
                                                     "folder (for the GPU call to carry), then stop"})
    provenance: str = field(default="", metadata={"help": "the carry.json that --carry wrote (its git commit is "
                                                          "recorded where the tree travelled without .git)"})
    device: str = device_field()
    work: str = field(default="", metadata={"help": "folder for the training checkpoints (default: a new temp one)"})
    compile_backend: str = field(default="inductor", metadata={"help": "torch.compile's backend for the check"})
    check_model: str = field(default="shipped", metadata={"choices": ("shipped", "tiny"), "help": "the UNet of the "
                                                          "env checks: the shipped one, or a tiny fresh one"})
    test_timeout_s: float = field(default=150.0, metadata={"help": "most seconds for pytest -m cuda"})
    throughput_batches: tuple[int, ...] = field(default=(256, 1024, 4096, 16384, 65536),
                                                metadata={"help": "DDIM batches, while memory and time hold"})
    throughput_steps: int = field(default=50, metadata={"help": "S of the throughput runs"})
    throughput_s: float = field(default=60.0, metadata={"help": "most seconds for the batch sweep"})
    overhead_batches: tuple[int, ...] = field(default=(64, 1024), metadata={"help": "batches of the overhead ratio"})
    overhead_steps: int = field(default=20, metadata={"help": "S of the overhead ratio"})
    overhead_rounds: int = field(default=7, metadata={"help": "interleaved rounds of the overhead ratio"})
    block_s: float = field(default=0.2, metadata={"help": "a timed block of the overhead ratio lasts this long"})
    train_batch_size: int = field(default=256, metadata={"help": "the CPU recipe has 64"})
    train_lr: float = field(default=2e-3, metadata={"help": "the CPU recipe has 1e-3 at batch 64"})
    train_base_channels: int = field(default=32, metadata={"help": "32 is the shipped model's size"})
    train_channel_mults: tuple[int, ...] = field(default=(1, 2, 2), metadata={"help": "UNet levels"})
    train_num_res_blocks: int = field(default=1, metadata={"help": "res blocks per level"})
    train_warmup: int = field(default=200, metadata={"help": "warmup steps (the speed probes run inside it)"})
    train_ema_decay: float = field(default=0.999, metadata={"help": "EMA decay"})
    train_n_images: int = field(default=0, metadata={"help": "train on the first N images only (0: all 60k)"})
    train_max_steps: int = field(default=100_000, metadata={"help": "at most this many steps, whatever the time"})
    train_compile: bool = field(default=False, metadata={"help": "train with torch.compile"})
    train_min_s: float = field(default=90.0, metadata={"help": "seconds the stages before training leave it"})
    reserve_s: float = field(default=75.0, metadata={"help": "seconds kept after training for FID and the summary"})
    fid_n: int = field(default=2000, metadata={"help": "samples per seed for FID"})
    fid_seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds of the FID cells"})
    fid_steps: int = field(default=50, metadata={"help": "DDIM steps of the FID cells"})
    fid_batch: int = field(default=1000, metadata={"help": "batch of the FID sampling"})

    def __post_init__(self) -> None:
        if self.smoke:
            vars(self).update(SMOKE)
            self.device = "cpu" if self.device == "auto" else self.device
        for name in ("budget_s", "test_timeout_s", "throughput_s", "train_min_s", "reserve_s", "block_s"):
            setattr(self, name, check_float(name, float(getattr(self, name)), 0.0, 86400.0))
        for name in ("throughput_steps", "overhead_steps", "overhead_rounds", "train_batch_size",
                     "train_base_channels", "train_num_res_blocks", "train_max_steps", "fid_steps", "fid_batch"):
            check_int(name, getattr(self, name), 1)
        check_int("fid_n", self.fid_n, 2, 10_000)
        for name in ("throughput_batches", "overhead_batches", "fid_seeds"):
            setattr(self, name, tuple(check_int(f"each of {name}", b, 0 if name == "fid_seeds" else 1)
                                      for b in getattr(self, name)))

    def recipe(self) -> TrainConfig:
        """The fashion-mnist recipe with this run's sizes (steps are set by the time left)."""
        return TrainConfig(dataset="fashion-mnist", batch_size=self.train_batch_size, lr=self.train_lr,
                           warmup=self.train_warmup, base_channels=self.train_base_channels,
                           channel_mults=self.train_channel_mults, num_res_blocks=self.train_num_res_blocks,
                           ema_decay=self.train_ema_decay, n_images=self.train_n_images, device=self.device,
                           compile=self.train_compile, ckpt_every=250)


@dataclass
class Clock:
    """The global budget: seconds since the run began, and seconds left of ``budget_s``."""

    budget_s: float
    start: float = field(default_factory=now)  # on the one clock, store.instruments.now

    def left(self) -> float:
        return self.budget_s - (now() - self.start)


def run_stage(res: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]], clock: Clock, need_s: float,
              save: Callable[[], None], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one stage if ``need_s`` seconds are left; record ok (with its dict), failed (error, traceback) or skipped,
    and its seconds, in ``res["stages"][name]``; then ``save()``. An Exception never stops the run."""
    left = clock.left()
    if left < need_s:
        rec: dict[str, Any] = {"status": "skipped", "why": f"{left:.0f} s of the budget left, below the "
                                                          f"{need_s:.0f} s this stage needs"}
    else:
        with Stopwatch() as sw:
            try:
                rec = {"status": "ok"} | fn()
            except Exception as e:  # noqa: BLE001 - recorded, and the next stage runs
                rec = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                       "traceback": traceback.format_exc()[-4000:]}
        rec["seconds"] = round(sw.seconds, 2)
    res["stages"][name] = rec
    res["elapsed_s"] = round(clock.budget_s - clock.left(), 1)
    save()
    log(f"[gpu-run] {name}: {rec['status']}" + (f" in {rec['seconds']} s" if "seconds" in rec else "")
        + (f" ({rec.get('error') or rec.get('why')})" if rec["status"] != "ok" else "")
        + f"; {clock.left():.0f} s of the budget left")
    return rec


def run_gpu(cfg: GpuRunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """All stages in order, within ``cfg.budget_s``; returns the results (also in OUT/gpu_run.json and .md)."""
    clock, dev = Clock(cfg.budget_s), pick_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    carried = json.loads(Path(cfg.provenance).read_text()) if cfg.provenance else {}
    res: dict[str, Any] = {"table": "gpu_run", "config": asdict(cfg), "git_commit": git_commit() or
                           carried.get("git_commit"), "carried": carried, "machine": machine(), "started":
                           datetime.now(timezone.utc).isoformat(timespec="seconds"), "stages": {}}

    def save() -> None:
        save_results(out / "gpu_run", res, markdown)

    def stage(name: str, need_s: float, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return run_stage(res, name, fn, clock, need_s, save, log)

    def spare() -> float:  # what a stage before training may spend, leaving training and the reserve theirs
        return clock.left() - cfg.reserve_s - cfg.train_min_s

    stage("env", 5, lambda: env_stage(dev, cfg.compile_backend, tiny=cfg.check_model == "tiny"))
    before_train = cfg.reserve_s + cfg.train_min_s + 10  # a stage before training runs only with 10 s to spare
    stage("cuda_tests", before_train, lambda: tests_stage(min(cfg.test_timeout_s, spare())))
    stage("throughput", before_train, lambda: throughput_stage(
        dev, cfg.throughput_batches, cfg.throughput_steps, min(cfg.throughput_s, spare()),
        cfg.overhead_batches, cfg.overhead_steps, cfg.overhead_rounds, cfg.block_s))
    work = Path(cfg.work or tempfile.mkdtemp(prefix="ddim-lesson-gpu-run-"))
    deadline = clock.start + cfg.budget_s - cfg.reserve_s
    train = stage("train", cfg.reserve_s + 10, lambda: train_stage(cfg.recipe(), deadline, work, out / MODEL_NAME,
                                                                   cfg.train_max_steps))
    if train["status"] == "ok":
        stage("fid", 5, lambda: fid_stage(dev, out / MODEL_NAME, cfg.fid_steps, cfg.fid_n, cfg.fid_batch,
                                          cfg.fid_seeds, out / "samples.png"))
    else:
        run_stage(res, "fid", lambda: {"status": "skipped", "why": "no GPU-trained model"}, clock, 0, save, log)
    return res


def prepare_carry(folder: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Copy the Fashion-MNIST IDX files (gzipped) from where the loader finds them (store.data's one search:
    $DDIM_LESSON_DATA, Debian's folder, the cache) into ``folder``/fashion-mnist, check they load, and write
    ``folder``/carry.json (commit, time, SHA-256)."""
    src = fashion_mnist_location()  # the folder load_images would read
    if src is None:
        raise DataNotFoundError(f"no Fashion-MNIST IDX files in {', '.join(map(str, fashion_mnist_search()))}; set "
                                "DDIM_LESSON_DATA or install Debian's dataset-fashion-mnist")
    dst = Path(folder) / "fashion-mnist"
    dst.mkdir(parents=True, exist_ok=True)
    sums = {}
    for f in IDX_FILES:
        gz = dst / (f + ".gz")
        if (src / (f + ".gz")).exists():
            shutil.copyfile(src / (f + ".gz"), gz)
        else:
            gz.write_bytes(gzip.compress((src / f).read_bytes()))
        sums[gz.name] = hashlib.sha256(gz.read_bytes()).hexdigest()
    n_train, n_test = (load_images("fashion-mnist", train=tr, root=dst).shape[0] for tr in (True, False))
    info = {"git_commit": git_commit(), "prepared": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": str(src), "files": sums, "train_images": n_train, "test_images": n_test}
    (Path(folder) / "carry.json").write_text(json.dumps(info, indent=1))
    log(f"copied Fashion-MNIST ({n_train} + {n_test} images) from {src} to {dst}; commit {info['git_commit']}")
    return info


def cmd_gpu_run(args: argparse.Namespace) -> None:
    """The ``gpu-run`` subcommand: --carry DIR, or the run."""
    cfg = dataclass_from_args(GpuRunConfig, args)
    if cfg.carry:
        prepare_carry(cfg.carry)
        return
    announce_threads(pick_threads())
    res = run_gpu(cfg)
    bad = [k for k, v in res["stages"].items() if v["status"] != "ok"]
    print(f"[gpu-run] done in {res['elapsed_s']} s of {cfg.budget_s:.0f}; results in {cfg.out}/gpu_run.json and .md"
          + (f"; not ok: {', '.join(bad)}" if bad else "; every stage ok"))
