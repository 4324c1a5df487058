"""train/distributed.py on its own: one process is world 1 (no process group, its own generator state, the
loss as it is); two gloo processes, launched as torchrun launches them, average the loss over ranks and gather
every rank's generator state, which replays that rank's noise. (tests/train/test_ddp.py trains under DDP.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from ddim_lesson.train.distributed import gather_rng_states, init_distributed, mean_over_ranks

RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    from ddim_lesson.train.distributed import gather_rng_states, init_distributed, mean_over_ranks

    rank, world = init_distributed(torch.device("cpu"))
    loss = torch.tensor(3.0 * (rank + 1))
    mean = mean_over_ranks(loss, world)
    g = torch.Generator().manual_seed(100 + rank)
    torch.randn(5, generator=g)  # each rank has drawn some noise
    states = gather_rng_states(g, world)
    replay = []
    for s in states:
        h = torch.Generator()
        h.set_state(s)
        replay.append(torch.randn(3, generator=h).tolist())
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
        json.dump({"rank": rank, "world": world, "mean": mean, "loss_after": float(loss), "replay": replay}, f)
    dist.destroy_process_group()
    """
)


def test_world_one_needs_no_process_group(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed(torch.device("cpu")) == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed(torch.device("cpu")) == (0, 1)
    assert not dist.is_initialized()
    g = torch.Generator().manual_seed(7)
    (state,) = gather_rng_states(g, 1)
    expected = torch.randn(4, generator=g)
    h = torch.Generator()
    h.set_state(state)
    assert torch.equal(torch.randn(4, generator=h), expected)
    loss = torch.tensor(0.25, dtype=torch.float64)
    assert mean_over_ranks(loss, 1) == 0.25 and isinstance(mean_over_ranks(loss, 1), float)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_average_the_loss_and_gather_each_ranks_noise(tmp_path: Path):
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1", "DDIM_LESSON_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(tmp_path)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r, out in enumerate(res):
        assert (out["rank"], out["world"]) == (r, 2)
        assert out["mean"] == pytest.approx((3.0 + 6.0) / 2)  # the mean over ranks, not the sum, not rank 0's
        assert out["loss_after"] == 3.0 * (r + 1)  # the caller's tensor is left as it was
    for r in range(2):  # every rank holds every rank's state, and each replays that rank's next draws
        g = torch.Generator().manual_seed(100 + r)
        torch.randn(5, generator=g)
        expected = torch.randn(3, generator=g).tolist()
        assert res[0]["replay"][r] == res[1]["replay"][r] == pytest.approx(expected, abs=0)
    assert res[0]["replay"][0] != res[0]["replay"][1]
