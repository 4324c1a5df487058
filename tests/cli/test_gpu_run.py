"""The prepared GPU run (benchmarks/gpu_run.sh over ``ddim-lesson gpu-run``): its smoke mode end to end through the
script, on the CPU, with the packages the GPU machine lacks made unimportable; the budget rules (a failing stage is
recorded and the next runs, a stage without the time it needs is skipped, training stops itself at its deadline
with a checkpoint); and the tests that only mean something on CUDA (marked ``cuda``, skipped here)."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from disk_datasets import write_idx_set

from ddim_lesson.cli import gpu_train
from ddim_lesson.cli.gpu_run import Clock, GpuRunConfig, prepare_carry, run_stage
from ddim_lesson.cli.gpu_train import SAFETY, command_line, steps_that_fit, train_stage
from ddim_lesson.store import data
from ddim_lesson.store.checkpoints import load_checkpoint
from ddim_lesson.train.loop import train
from ddim_lesson.train.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
ABSENT_ON_THE_GPU_MACHINE = ("ipywidgets", "diffusers", "jupyterlab")  # not nbval: a pytest plugin here
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """A 40 + 8 image Fashion-MNIST in gzipped IDX files (as Debian ships it), where DDIM_LESSON_DATA points."""
    src = tmp_path / "src"
    write_idx_set(src, 40, 8, gz=True)
    monkeypatch.setenv("DDIM_LESSON_DATA", str(src))
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    return src


def test_smoke_run_through_the_script(fake_fashion, tmp_path):
    """--prepare's copy, then the device command with --smoke: every stage ok, the files the device tool brings
    back (at most 8, plain names), provenance from the carried commit, and the FID recomputed independently."""
    carry = tmp_path / "carry"
    info = prepare_carry(carry)
    for f in fake_fashion.iterdir():
        assert (carry / "fashion-mnist" / f.name).read_bytes() == f.read_bytes()
    assert (info["train_images"], info["test_images"]) == (40, 8)
    blocked = tmp_path / "blocked"  # the GPU image has none of these: the run must not import them
    for name in ABSENT_ON_THE_GPU_MACHINE:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the GPU machine')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DDIM_LESSON_DATA", "OUT")}
    env |= {"PYTHON": sys.executable, "GPU_CARRY": str(carry), "PYTHONPATH": str(blocked), "DDIM_LESSON_THREADS": "1"}
    out = tmp_path / "out"
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "benchmarks/gpu_run.sh", "--smoke", "--out", str(out), "--work",
                           str(tmp_path / "work")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = {p.name for p in out.iterdir()}
    assert files == {"gpu_run.json", "gpu_run.md", "log.txt", "gpu-fashion-mnist.safetensors",
                     "gpu-fashion-mnist.json", "samples.png"}, files
    res = json.loads((out / "gpu_run.json").read_text())
    assert {k: v["status"] for k, v in res["stages"].items()} == dict.fromkeys(
        ("env", "cuda_tests", "throughput", "train", "fid"), "ok"), res["stages"]
    assert res["carried"] == info and res["git_commit"]  # this tree's commit, or (without .git) the carried one
    assert res["elapsed_s"] <= res["config"]["budget_s"] and res["elapsed_s"] < wall
    tests = res["stages"]["cuda_tests"]
    assert "skipped" in tests["summary"] and "failed" not in tests["summary"], tests["summary"]
    assert all(c["works"] for c in res["stages"]["env"]["checks"].values())
    tp = res["stages"]["throughput"]
    assert tp["rows"] and all(r["images_per_s"] > 0 for r in tp["rows"])
    assert tp["overhead"]["by_batch"]["2"]["median"] > 0

    tr = res["stages"]["train"]
    assert tr["steps"] == tr["planned_steps"] == 6 and tr["completed"] and not tr["stopped_by_deadline"]
    ckpt, _ = load_checkpoint(tmp_path / "work" / "checkpoint")
    exported, _ = load_checkpoint(out / "gpu-fashion-mnist")
    assert exported and all(torch.equal(v, ckpt["ema." + k]) for k, v in exported.items())

    fid = res["stages"]["fid"]
    from ddim_lesson import pretrained
    from ddim_lesson.evaluate.generate import sample_in_batches
    from ddim_lesson.evaluate.metrics import fid as fid_of

    model, schedule = pretrained("fashion-mnist")
    direct = fid_of(sample_in_batches(model, schedule, 8, 8, steps=2, seed=0))  # batch 0 of seed 0: x_T seed 0
    assert math.isclose(fid["fid"]["shipped"][0], direct, rel_tol=1e-3), (fid["fid"]["shipped"], direct)
    assert fid["gpu_minus_shipped"][0] == fid["fid"]["gpu"][0] - fid["fid"]["shipped"][0]
    md = (out / "gpu_run.md").read_text()
    assert "smoke run" in md and f"{fid['fid']['shipped'][0]:.2f}" in md and "| train | ok |" in md
    assert "[gpu-run] fid: ok" in (out / "log.txt").read_text()


def test_carry_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("DDIM_LESSON_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(FileNotFoundError, match=r"no Fashion-MNIST IDX files in .*empty.*no-debian.*no-cache"):
        prepare_carry(tmp_path / "carry")
    assert not (tmp_path / "carry").exists()  # nothing made before the data is found


@pytest.mark.parametrize("where", ["DDIM_LESSON_DATA", "torchvision root", "cache"])
def test_carry_finds_the_data_where_the_loader_finds_it(tmp_path, monkeypatch, where):
    """prepare_carry takes store.data's one search: wherever load_images finds Fashion-MNIST ($DDIM_LESSON_DATA,
    a torchvision root's FashionMNIST/raw, the cache), the carry copies the same files, and they load the same.
    Its own search (before issue 20) looked in $DDIM_LESSON_DATA and Debian's folder only: it missed the cache."""
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("DDIM_LESSON_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DDIM_LESSON_DATA", raising=False)
    home = {"DDIM_LESSON_DATA": tmp_path / "mine", "torchvision root": tmp_path / "tv" / "FashionMNIST" / "raw",
            "cache": tmp_path / "cache"}[where]
    arrays = write_idx_set(home, 6, 4, gz=where != "torchvision root")
    if where != "cache":
        monkeypatch.setenv("DDIM_LESSON_DATA", str(tmp_path / ("mine" if where == "DDIM_LESSON_DATA" else "tv")))
    assert data.fashion_mnist_location() == home  # where the loader looks first, the data is
    info = prepare_carry(tmp_path / "carry", log=lambda m: None)
    assert info["source"] == str(home) and (info["train_images"], info["test_images"]) == (6, 4)
    carried = data.load_images("fashion-mnist", train=True, root=tmp_path / "carry" / "fashion-mnist")
    assert torch.equal(carried, data.load_images("fashion-mnist", train=True))  # what the loader reads here
    assert torch.equal(carried, data.from_uint8(torch.from_numpy(arrays["train-images-idx3-ubyte"])[:, None]))


def test_a_failing_stage_is_recorded_and_the_next_still_runs():
    res, saves, log = {"stages": {}}, [], []
    clock = Clock(100.0)

    def broken() -> dict:
        raise ValueError("planted")

    run_stage(res, "a", broken, clock, 1, lambda: saves.append("a"), log.append)
    run_stage(res, "b", lambda: {"x": 1}, clock, 1, lambda: saves.append("b"), log.append)
    run_stage(res, "c", lambda: {"x": 2}, clock, 101, lambda: saves.append("c"), log.append)
    a, b, c = (res["stages"][k] for k in "abc")
    assert a["status"] == "failed" and a["error"] == "ValueError: planted" and "broken" in a["traceback"]
    assert b == {"status": "ok", "x": 1, "seconds": b["seconds"]} and saves == ["a", "b", "c"]
    assert c["status"] == "skipped" and "below the 101 s" in c["why"] and "seconds" not in c
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is the user's, not a stage failure
        run_stage(res, "d", lambda: (_ for _ in ()).throw(KeyboardInterrupt()), clock, 1, lambda: None, log.append)
    from ddim_lesson.cli.gpu_card import markdown

    md = markdown({"config": {"budget_s": 100.0}, **res})  # what save() writes after each stage, partial or not
    assert "| a | failed |" in md and "ValueError: planted" in md and "| c | skipped |" in md
    assert "Training: did not finish" in md and log[0].startswith("[gpu-run] a: failed")


def test_steps_that_fit_spends_the_safety_share_of_the_time_left():
    assert steps_that_fit(100, 0.01, 2.0, 102.0, 10**6) == 100 + int(100 * SAFETY / 0.01)
    assert steps_that_fit(100, 0.01, 2.0, 102.0, 5000) == 5000
    assert steps_that_fit(100, 0.01, 5.0, 3.0, 10**6) == 100  # nothing more fits
    with pytest.raises(ValueError, match="step_s must be a finite number > 0, got 0.0"):
        steps_that_fit(0, 0.0, 0.0, 10.0, 10)


def _tiny_recipe(**kw) -> TrainConfig:
    base = dict(dataset="fashion-mnist", batch_size=4, lr=1e-3, warmup=4, base_channels=8, channel_mults=(1, 2),
                n_images=32, device="cpu", progress=False)
    return TrainConfig(**{**base, **kw})


def test_the_deadline_stops_training_with_a_checkpoint(fake_fashion, tmp_path, monkeypatch):
    """A plan that does not fit (as if the machine slowed down) is cut by the timer: SIGINT, a checkpoint of the last
    whole step, the EMA weights of that step exported, and the stage back within a step or two of the deadline."""
    monkeypatch.setattr(gpu_train, "steps_that_fit", lambda done, *a: 10**6)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as DDIM_LESSON_THREADS=1 asks; the run records it and its resumes keep it
    try:
        deadline = time.perf_counter() + 5.0
        rec = train_stage(_tiny_recipe(), deadline, tmp_path / "work", tmp_path / "model", max_steps=10**6)
        late = time.perf_counter() - deadline
    finally:
        torch.set_num_threads(threads)
    assert rec["stopped_by_deadline"] and not rec["completed"] and rec["steps"] >= 1 and late < 3.0, (rec, late)
    if "planned_steps" in rec:  # the timer cut the final session (on a loaded machine it may cut a probe)
        assert sum(rec["probe_steps"]) < rec["steps"] < rec["planned_steps"]
    ckpt, meta = load_checkpoint(tmp_path / "work" / "checkpoint")
    exported, emeta = load_checkpoint(tmp_path / "model")
    assert meta["steps"] == emeta["steps"] == rec["steps"]
    assert all(torch.equal(v, ckpt["ema." + k]) for k, v in exported.items())


def test_the_command_line_names_the_same_run():
    """The card's command, parsed by the real ``train`` parser, gives back the run's config."""
    from ddim_lesson.cli.flags import dataclass_from_args
    from ddim_lesson.cli.main import build_parser, validate_flags

    cfg = _tiny_recipe(steps=1234, ema_decay=0.9995, out="runs/x", device="auto", progress=True, ckpt_every=250)
    argv = shlex.split(command_line(cfg))
    assert argv[:2] == ["ddim-lesson", "train"]
    args = build_parser().parse_args(argv[1:])
    validate_flags(args)  # as main() does before any command: fills the defaults the parser leaves open
    again = dataclass_from_args(TrainConfig, args)
    assert again == cfg
    assert GpuRunConfig().recipe().batch_size == 256 and GpuRunConfig(smoke=True).device == "cpu"


# -- on a GPU only (benchmarks/gpu_run.sh runs these with -m cuda) ------------------------------------------------
@pytest.mark.cuda
@CUDA
def test_bf16_channels_last_training_resumes_on_cuda(fake_fashion, tmp_path):
    """Training on CUDA (bf16 autocast, channels_last) stops after 3 steps and resumes to where an uninterrupted run
    ends: the same losses (to 1e-3: cuDNN's backward may sum in another order) and a GPU named in the metadata."""
    full = train(_tiny_recipe(device="cuda", steps=6, out=str(tmp_path / "full")))
    train(_tiny_recipe(device="cuda", steps=6, out=str(tmp_path / "part"), stop_after=3))
    part = train(_tiny_recipe(device="cuda", steps=6, out=str(tmp_path / "part"), resume=True))
    torch.testing.assert_close(torch.tensor(part.losses), torch.tensor(full.losses), atol=1e-3, rtol=0)
    assert part.meta["device"].startswith("cuda (") and all(math.isfinite(v) for v in part.losses)


@pytest.mark.cuda
@CUDA
def test_bf16_sampling_on_cuda_stays_near_fp32():
    """The shipped model's DDIM samples under bf16 autocast are within 0.05 (mean |Δ|, pixels in [-1, 1]) of fp32's
    from the same x_T, and the throughput helper measures a positive rate in both."""
    from ddim_lesson import ddim_sample, pretrained
    from ddim_lesson.evaluate.throughput import sampling_throughput

    model, schedule = pretrained("fashion-mnist")
    model = model.cuda()
    x_T = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)).cuda()
    fp32 = ddim_sample(model, schedule, x_T, steps=20)
    with torch.autocast("cuda", torch.bfloat16):
        bf16 = ddim_sample(model, schedule, x_T, steps=20)
    assert (bf16.float() - fp32).abs().mean() < 0.05
    for bf in (False, True):
        assert sampling_throughput(model, schedule, torch.device("cuda"), batch=256, steps=5, bf16=bf) > 0


def test_device_info_reads_a_gpu_and_out_of_memory_is_told_apart(monkeypatch):
    """The CUDA branch of device_info on a stand-in for torch's device properties (the names it reads exist on
    them), and the out-of-memory test the throughput sweep stops on."""
    from types import SimpleNamespace

    from ddim_lesson.cli.gpu_stages import _is_oom, device_info

    props = SimpleNamespace(name="Stand-in GPU", total_memory=80 * 2**30, major=9, minor=0, multi_processor_count=132)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev: props)
    info = device_info(torch.device("cuda", 0))
    assert (info["name"], info["memory_gib"], info["capability"], info["multiprocessors"]) == (
        "Stand-in GPU", 80.0, "9.0", 132)
    assert {"cuda", "cudnn", "tf32_conv", "tf32_matmul", "machine"} <= set(info)
    assert _is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert _is_oom(RuntimeError("CUDA error: out of memory")) and not _is_oom(RuntimeError("shape mismatch"))
