"""DDP: two processes with the gloo backend on the CPU, launched as torchrun would launch them.

Each rank gets its own ``out`` folder, so the test can see which ranks write files: only rank 0
may. Each rank saves its final weights; the replicas must be identical, although every rank
trains on its own batches with its own noise (DDP averages the gradients).
"""

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch.distributed as dist
    from safetensors.torch import save_file
    from ddim_lesson.train.loop import train
    from ddim_lesson.train.train_config import TrainConfig

    rank, tmp = int(os.environ["RANK"]), sys.argv[1]
    cfg = TrainConfig(dataset="two-moons", steps=6, batch_size=32, mlp_hidden=16, mlp_depth=1, n_toy=512,
                      warmup=2, device="cpu", progress=False, ckpt_every=3, out=f"{tmp}/out{rank}")
    res = train(cfg)
    weights = {f"model.{k}": v for k, v in res.model.state_dict().items()}
    weights |= {f"ema.{k}": v for k, v in res.ema.state_dict().items()}
    save_file(weights, f"{tmp}/rank{rank}.safetensors")
    with open(f"{tmp}/rank{rank}.json", "w") as f:
        json.dump({"losses": res.losses, "world_size": res.meta["world_size"]}, f)
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_stay_identical(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for rank, p in enumerate(procs):
        try:
            out, _ = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"rank {rank} hung (a collective that one rank skipped?)")
        assert p.returncode == 0, f"rank {rank} failed:\n{out}"

    w0, w1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys() and any(k.startswith("ema.") for k in w0)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), f"replicas differ at {k}"

    import json

    m0, m1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(m0["losses"]) == 6 and m0["losses"] == m1["losses"]  # the loss is averaged over ranks
    assert m0["world_size"] == 2
    # rank 0 alone wrote checkpoint.* and model.*; rank 1's folder stays empty
    assert sorted(p.name for p in (tmp_path / "out0").iterdir()) == [
        "checkpoint.json", "checkpoint.prev.safetensors", "checkpoint.safetensors", "model.json", "model.safetensors"]
    assert not (tmp_path / "out1").exists() or not any((tmp_path / "out1").iterdir())
    ckpt = json.loads((tmp_path / "out0" / "checkpoint.json").read_text())
    assert ckpt["world_size"] == 2 and ckpt["steps"] == 6
    # every rank's noise-generator state is kept, so a resumed DDP run replays the same noise
    from ddim_lesson.store.checkpoints import load_checkpoint

    tensors, _ = load_checkpoint(tmp_path / "out0" / "checkpoint")
    assert {"rng.noise.0", "rng.noise.1"} <= tensors.keys()
    assert not torch.equal(tensors["rng.noise.0"], tensors["rng.noise.1"])
