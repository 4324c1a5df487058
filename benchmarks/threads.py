"""The thread rule, measured: one UNet call with 1 thread, all cores, and ``pick_threads``' choice, idle and with
one core kept busy by a spinning process.

    python benchmarks/threads.py --out benchmarks/results/threads   # the committed result
    python benchmarks/threads.py --rounds 3                          # a look: writes runs/eval/threads.{json,md}

Run it on an otherwise quiet machine: it makes the load it measures under.
"""

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from ddim_lesson.course.thread_bench import ThreadBenchConfig, run_thread_bench, thread_bench_markdown
from ddim_lesson.evaluate.records import git_commit
from ddim_lesson.store import pretrained
from ddim_lesson.store.ckpt_files import atomic_write as _atomic_write
from ddim_lesson.store.device import machine

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default="runs/eval/threads", help="results path without suffix")
    a = p.parse_args()
    try:
        cfg = ThreadBenchConfig(batch=a.batch, calls=a.calls, rounds=a.rounds)
    except ValueError as e:
        p.error(str(e))
    model, _ = pretrained("fashion-mnist")
    res = run_thread_bench(model, cfg)
    res.update(machine=machine(), commit=git_commit(), updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    md = thread_bench_markdown(res)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(Path(a.out + ".json"), json.dumps(res, indent=1).encode())
    _atomic_write(Path(a.out + ".md"), md.encode())
    print(md)
