"""course/thread_bench.py: which thread counts it times, what it keeps, the ratios it reports, the spinner.

The clock is faked (the bench's ``Stopwatch`` reads a fake clock, ``time.sleep`` only records) and the
"model" advances it by a known cost per call that depends on the thread count torch is set to and on
whether the spinning process runs. So every number the bench reports has an independent value computed
here from the recorded costs; the spinner is a sleeping process, not a busy one (the machine's cores are
shared).
"""

from __future__ import annotations

import re
import signal
import statistics
import subprocess
from types import SimpleNamespace

import pytest
import torch

from ddim_lesson.course import thread_bench
from ddim_lesson.course.env import ThreadChoice
from ddim_lesson.course.thread_bench import (
    ThreadBenchConfig,
    measure_condition,
    run_thread_bench,
    thread_bench_markdown,
)
from ddim_lesson.store.instruments import Stopwatch

CORES = 4
CHOSEN = {"idle": 3, "busy": 2}  # distinct from 1 and CORES, so each timed block is one run of one count
# ms per call by (busy, threads); a warm-up call costs WARM times more (what the bench must leave out)
COST = {(False, 1): 8.0, (False, CORES): 2.5, (False, 3): 2.6, (True, 1): 8.5, (True, CORES): 9.0, (True, 2): 4.5}
WARM = 5.0


class Spinner(subprocess.Popen):
    """The spinner process; a wait that outlasts 10 s means it was never killed (a failure, not a hang)."""

    def wait(self, timeout: float | None = None) -> int:
        return super().wait(timeout=10 if timeout is None else timeout)


class FakeBench:
    """The fake clock, the spinner's record, and a model whose calls cost COST[(busy, threads)] ms (+ jitter)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cfg: ThreadBenchConfig) -> None:
        self.now, self.slept, self.spinners = 0.0, [], []
        self.calls: list[tuple[bool, int, float, bool]] = []  # (busy, threads, ms, warm-up) per model call
        self.cfg, self.jitter = cfg, torch.Generator().manual_seed(1)
        self.per_block = cfg.calls + 1
        monkeypatch.setattr(thread_bench, "time", SimpleNamespace(sleep=self.slept.append))
        monkeypatch.setattr(thread_bench, "Stopwatch", lambda: Stopwatch(lambda: self.now))  # the one timer, faked
        monkeypatch.setattr(thread_bench, "SPIN", "import time; time.sleep(120)")  # a process, but idle

        def popen(*args, **kw):
            self.spinners.append(Spinner(*args, **kw))
            return self.spinners[-1]

        monkeypatch.setattr(thread_bench, "subprocess", SimpleNamespace(Popen=popen))
        monkeypatch.setattr(thread_bench, "available_cores", lambda: CORES)
        monkeypatch.setattr(thread_bench, "pick_threads", self.pick)

    def busy(self) -> bool:
        return bool(self.spinners) and self.spinners[-1].poll() is None

    def pick(self, apply: bool = True) -> ThreadChoice:
        assert apply is False  # the bench must not change the process's setting through the rule
        n = CHOSEN["busy" if self.busy() else "idle"]
        return ThreadChoice(n, CORES, float(n), f"{n} idle core(s)")

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        busy, n = self.busy(), torch.get_num_threads()
        warm = len(self.calls) % self.per_block == 0
        ms = COST[(busy, n)] * (WARM if warm else 1.0) * (1 + 0.2 * float(torch.rand(1, generator=self.jitter)))
        self.calls.append((busy, n, ms, warm))
        self.now += ms / 1000
        assert x.shape == (self.cfg.batch, 1, 28, 28) and torch.all(t == 500)
        return x

    def expected(self, busy: bool, with_warmup: bool = False) -> dict[int, float]:
        """Median over rounds of each count's ms per timed call, from the recorded costs alone."""
        blocks: dict[int, list[float]] = {}
        rows = [c for c in self.calls if c[0] == busy]
        for i in range(0, len(rows), self.per_block):
            block = rows[i:i + self.per_block]
            assert len({c[1] for c in block}) == 1 and block[0][3] and not any(c[3] for c in block[1:])
            timed = block if with_warmup else block[1:]
            blocks.setdefault(block[0][1], []).append(sum(c[2] for c in timed) / self.cfg.calls)
        return {n: statistics.median(v) for n, v in blocks.items()}


@pytest.fixture
def cfg() -> ThreadBenchConfig:
    return ThreadBenchConfig(batch=2, calls=3, rounds=5)


def test_each_round_times_one_thread_all_cores_and_the_choice_and_restores_the_setting(monkeypatch, cfg):
    fake = FakeBench(monkeypatch, cfg)
    before = torch.get_num_threads()
    res = measure_condition(fake, cfg, "idle", progress=False)
    one_round = [1] * fake.per_block + [CORES] * fake.per_block + [CHOSEN["idle"]] * fake.per_block
    assert [c[1] for c in fake.calls] == one_round * cfg.rounds
    assert torch.get_num_threads() == before
    keys = {"1 thread": 1, f"{CORES} threads": CORES, "chosen": CHOSEN["idle"]}
    want = fake.expected(busy=False)
    for key, n in keys.items():
        assert res["ms_per_call"][key] == pytest.approx(want[n], abs=0.006)
        assert len(res["runs_ms"][key]) == cfg.rounds
        assert res["ms_per_call"][key] == pytest.approx(statistics.median(res["runs_ms"][key]), abs=0.006)
    assert res["chosen_threads"] == CHOSEN["idle"]
    # planted bug: a bench that timed the warm-up call too would report other numbers
    wrong = fake.expected(busy=False, with_warmup=True)
    assert all(abs(res["ms_per_call"][k] - wrong[n]) > 0.1 for k, n in keys.items())


def test_the_thread_setting_is_restored_when_a_call_fails(monkeypatch, cfg):
    fake = FakeBench(monkeypatch, cfg)
    before = torch.get_num_threads()

    def failing(x, t):
        if torch.get_num_threads() == CORES:
            raise RuntimeError("planted failure at the all-core count")
        return fake(x, t)

    with pytest.raises(RuntimeError, match="planted failure"):
        measure_condition(failing, cfg, "idle", progress=False)
    assert torch.get_num_threads() == before


def test_run_measures_idle_then_busy_and_the_ratios_follow_from_the_medians(monkeypatch, cfg):
    fake = FakeBench(monkeypatch, cfg)
    res = run_thread_bench(fake, cfg, progress=False)
    # idle calls before the spinner exists, busy calls all while it runs; it is gone afterwards
    assert [c[0] for c in fake.calls] == [False] * (len(fake.calls) // 2) + [True] * (len(fake.calls) // 2)
    assert len(fake.spinners) == 1 and fake.spinners[0].returncode == -signal.SIGKILL and fake.slept == [1.0]
    assert res["one_core_busy"]["chosen_threads"] == CHOSEN["busy"] and res["cores"] == CORES
    idle, busy = fake.expected(False), fake.expected(True)
    want = {"busy chosen / idle 1 thread": busy[CHOSEN["busy"]] / idle[1],
            "idle chosen / idle best fixed": idle[CHOSEN["idle"]] / min(idle[1], idle[CORES]),
            "busy all-core threads / busy chosen": max(busy.values()) / busy[CHOSEN["busy"]]}
    assert res["ratios"].keys() == want.keys()
    for k, v in want.items():
        assert res["ratios"][k] == pytest.approx(v, abs=0.003), k
    assert res["met"] == {k: want[k] <= lim for k, lim in res["targets"].items()}
    assert res["targets"] == {"busy chosen / idle 1 thread": 1.5, "idle chosen / idle best fixed": 1.1}


def test_the_spinner_is_killed_when_the_busy_measurement_fails(monkeypatch, cfg):
    fake = FakeBench(monkeypatch, cfg)

    def failing_when_busy(x, t):
        if fake.busy():
            raise RuntimeError("planted failure under load")
        return fake(x, t)

    with pytest.raises(RuntimeError, match="planted failure under load"):
        run_thread_bench(failing_when_busy, cfg, progress=False)
    assert len(fake.spinners) == 1 and fake.spinners[0].returncode == -signal.SIGKILL


def _table(md: str) -> dict[str, list[str]]:
    """First cell -> the other cells of each Markdown table row."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| ")]
    return {r[0]: r[1:] for r in rows}


def test_markdown_shows_the_measured_numbers_and_says_met_or_missed(monkeypatch, cfg):
    res = run_thread_bench(FakeBench(monkeypatch, cfg), cfg, progress=False)
    rows = _table(thread_bench_markdown(res))
    for key, label in (("idle", "idle"), ("one_core_busy", "one core busy (a spinning process)")):
        c = res[key]
        assert rows[label] == [f"{v:.1f}" for v in c["ms_per_call"].values()] + [str(c["chosen_threads"])]
    for k, v in res["ratios"].items():
        cells = rows[k]
        assert float(cells[0]) == pytest.approx(v, abs=5e-4)
        if k in res["targets"]:
            assert re.fullmatch(r"≤ [\d.]+, (met|\*\*missed\*\*)", cells[1])
            assert cells[1].endswith("met") == res["met"][k]
        else:
            assert cells[1] == "–"
    # a missed target says so
    k = "idle chosen / idle best fixed"
    missed = res | {"ratios": res["ratios"] | {k: 1.5}, "met": res["met"] | {k: False}}
    assert _table(thread_bench_markdown(missed))[k] == ["1.500", "≤ 1.1, **missed**"]


@pytest.mark.parametrize("field", ["batch", "calls", "rounds"])
def test_config_refuses_zero(field):
    with pytest.raises(ValueError, match=f"{field} must be an integer >= 1, got 0"):
        ThreadBenchConfig(**{field: 0})
