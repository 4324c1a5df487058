"""evaluate.seed_stats: summaries over seeds, a measure per seed's block, and a win in every seed.

Each against a computation written here with the standard library (statistics, explicit loops), with planted
bugs that the same checks catch: the population sd for the sample sd, blocks taken interleaved instead of in
order, a win that needs only one seed or only one measure.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from ddim_lesson.evaluate.seed_stats import beats_every_seed, mean_range, mean_sd, per_seed


def test_mean_sd_is_the_sample_mean_and_sd() -> None:
    v = [21.3, 19.8, 22.41, 20.05]
    m, sd = mean_sd(v)
    assert m == pytest.approx(statistics.fmean(v), abs=1e-12) and sd == pytest.approx(statistics.stdev(v), abs=1e-12)
    assert sd != pytest.approx(statistics.pstdev(v), abs=1e-3)  # planted: the population sd
    assert mean_sd([3.5]) == (3.5, 0.0)
    with pytest.raises(ValueError, match="one or more finite numbers"):
        mean_sd([])
    with pytest.raises(ValueError, match="one or more finite numbers"):
        mean_sd([1.0, float("nan")])


def test_mean_range_text() -> None:
    assert mean_range([0.91, 0.95, 0.9], 3) == f"{statistics.fmean([0.91, 0.95, 0.9]):.3f} (0.900-0.950)"
    assert mean_range([0.0012, 0.0031], 4) == "0.0022 (0.0012-0.0031)"
    with pytest.raises(ValueError, match=r"digits must be an integer in \[0, 12\]"):
        mean_range([1.0], -1)


def test_per_seed_takes_each_seeds_block_in_order() -> None:
    a = torch.arange(12.0).view(12, 1)
    b = 10 * a
    got = per_seed(lambda x, y: (x.sum().item(), y.sum().item()), a, b, 3)
    want = [(float(sum(range(4 * k, 4 * k + 4))), 10.0 * sum(range(4 * k, 4 * k + 4))) for k in range(3)]
    assert got == want
    interleaved = [(a[k::3].sum().item(), b[k::3].sum().item()) for k in range(3)]  # planted: seeds interleaved
    assert got != interleaved
    with pytest.raises(ValueError, match="multiple of n_seeds=5; got 12 and 12"):
        per_seed(lambda x, y: 0, a, b, 5)
    with pytest.raises(ValueError, match="got 12 and 8"):
        per_seed(lambda x, y: 0, a, b[:8], 4)


def test_beats_every_seed_needs_every_seed_and_every_measure() -> None:
    seeds, rivals = (0, 1, 2), ("DDIM", "3M")
    score = {(m, 4, s): v for s in seeds for m, v in (("student", (0.8, 0.01)), ("DDIM", (0.5, 0.02)),
                                                      ("3M", (0.7, 0.015)))}
    assert beats_every_seed(score, "student", rivals, 4, seeds, (True, False))

    def loop(sc: dict) -> bool:  # the same rule, written out
        for s in seeds:
            for r in rivals:
                if not (sc["student", 4, s][0] > sc[r, 4, s][0] and sc["student", 4, s][1] < sc[r, 4, s][1]):
                    return False
        return True

    one_seed_lost = {**score, ("student", 4, 2): (0.8, 0.016)}  # behind 3M on energy in seed 2 only
    assert beats_every_seed(one_seed_lost, "student", rivals, 4, seeds, (True, False)) is loop(one_seed_lost) is False
    assert beats_every_seed(one_seed_lost, "student", rivals, 4, seeds[:2], (True, False))  # the other seeds: yes
    assert not beats_every_seed(score, "student", rivals, 4, seeds, (True, True))  # a measure read the wrong way
    with pytest.raises(ValueError, match=r"score has no 2 measures for \('student', 8, 0\)"):
        beats_every_seed(score, "student", rivals, 8, seeds, (True, False))
