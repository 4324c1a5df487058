"""Measure the thread rule (``store.device.pick_threads``) against fixed thread counts, idle and with one core busy.

For each condition (idle; one other process spinning on a core) it times one UNet call at a
fixed batch with 1 thread, with every core's thread, and with what ``pick_threads`` chooses
there, interleaved round by round, and keeps the median. The targets (issue: truth pass):

- one core busy: the chosen count is at most 1.5× slower than an idle single-thread call;
- idle: the chosen count loses at most 10 % against the best fixed count.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.checks import check_int
from ..core.fields import check_fields, rounds_field
from ..evaluate.records import md_safe
from ..store.device import available_cores, pick_threads
from ..store.instruments import Stopwatch, progress_bar

SPIN = "while True: pass"


@dataclass
class ThreadBenchConfig:
    batch: int = field(default=4, metadata={"help": "images per UNet call"})
    calls: int = field(default=10, metadata={"help": "model calls per timed block"})
    rounds: int = rounds_field(7)

    def __post_init__(self) -> None:
        check_int("batch", self.batch, 1)
        check_int("calls", self.calls, 1)
        check_fields(self)  # rounds


def _block(model: nn.Module, batch: int, calls: int) -> Callable[[], float]:
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.full((batch,), 500, dtype=torch.long)

    def run() -> float:
        with torch.no_grad():
            model(x, t)  # warm-up at this thread count
            with Stopwatch() as sw:
                for _ in range(calls):
                    model(x, t)
            return 1000 * sw.seconds / calls

    return run


def measure_condition(model: nn.Module, cfg: ThreadBenchConfig, label: str, progress: bool = True) -> dict[str, Any]:
    """ms per UNet call with 1 thread, all cores, and the rule's choice, under the machine's current load."""
    cores = available_cores()
    choice = pick_threads(apply=False)
    counts = {"1 thread": 1, f"{cores} threads": cores, "chosen": choice.threads}
    run = _block(model, cfg.batch, cfg.calls)
    times: dict[str, list[float]] = {k: [] for k in counts}
    before = torch.get_num_threads()
    try:
        for _ in progress_bar(cfg.rounds, label, progress, unit="it", iterable=range(cfg.rounds)):
            for name, n in counts.items():
                torch.set_num_threads(n)
                times[name].append(run())
    finally:
        torch.set_num_threads(before)
    return {"chosen_threads": choice.threads, "reason": choice.reason, "idle_cores": round(choice.idle_cores, 2),
            "ms_per_call": {k: round(statistics.median(v), 2) for k, v in times.items()},
            "runs_ms": {k: [round(x, 2) for x in v] for k, v in times.items()}}


def run_thread_bench(model: nn.Module, cfg: ThreadBenchConfig, progress: bool = True) -> dict[str, Any]:
    """Both conditions and the two target ratios."""
    idle = measure_condition(model, cfg, "idle", progress)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(1.0)
        busy = measure_condition(model, cfg, "one core busy", progress)
    finally:
        spinner.kill()
        spinner.wait()
    ms_idle, ms_busy = idle["ms_per_call"], busy["ms_per_call"]
    best_idle = min(v for k, v in ms_idle.items() if k != "chosen")
    ratios = {
        "busy chosen / idle 1 thread": round(ms_busy["chosen"] / ms_idle["1 thread"], 3),
        "idle chosen / idle best fixed": round(ms_idle["chosen"] / best_idle, 3),
        "busy all-core threads / busy chosen": round(max(ms_busy.values()) / ms_busy["chosen"], 3),
    }
    targets = {"busy chosen / idle 1 thread": 1.5, "idle chosen / idle best fixed": 1.1}
    return {"config": vars(cfg), "cores": available_cores(), "idle": idle, "one_core_busy": busy,
            "ratios": ratios, "targets": targets,
            "met": {k: ratios[k] <= v for k, v in targets.items()}}


def thread_bench_markdown(res: dict[str, Any]) -> str:
    """The result as a small Markdown table."""
    res = md_safe(res)  # the reasons and names escaped before they meet Markdown
    lines = [f"# Threads: one UNet call at batch {res['config']['batch']}, ms (median of "
             f"{res['config']['rounds']} interleaved rounds), {res['cores']} cores", "",
             "| condition | " + " | ".join(res["idle"]["ms_per_call"]) + " | chosen count |",
             "|---" * (len(res["idle"]["ms_per_call"]) + 2) + "|"]
    for key, label in (("idle", "idle"), ("one_core_busy", "one core busy (a spinning process)")):
        c = res[key]
        lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in c["ms_per_call"].values())
                     + f" | {c['chosen_threads']} |")
    lines += ["", "| ratio | measured | target |", "|---|---|---|"]
    for k, v in res["ratios"].items():
        tgt = res["targets"].get(k)
        lines.append(f"| {k} | {v:.3f} | " + (f"≤ {tgt}, {'met' if res['met'][k] else '**missed**'}"
                                               if tgt else "–") + " |")
    lines += ["", f"Rule's reasons: idle: {res['idle']['reason']}; busy: {res['one_core_busy']['reason']}.", ""]
    return "\n".join(lines)
