"""evaluate.flow_twin_fid.paired_verdict: the mean paired FID difference, the per-seed differences, one sign.

Against the differences computed here seed by seed from a small table, with seeds missing on one side, and a
planted rule ("clear" from the mean's sign alone) that the mixed-sign case catches.
"""

from __future__ import annotations

import statistics

import pytest

from ddim_lesson.evaluate.flow_twin_fid import paired_verdict

TAB = {("fm", 5): {0: 30.0, 1: 31.5, 2: 29.0}, ("eps", 5): {0: 12.0, 1: 14.0, 2: 11.5, 3: 9.0},
       ("fm", 20): {0: 8.0, 1: 9.5, 2: 8.2}, ("eps", 20): {0: 8.5, 1: 9.0, 2: 9.1}}


def test_paired_verdict_against_seed_by_seed_differences() -> None:
    for nfe in (5, 20):
        d = [TAB["fm", nfe][s] - TAB["eps", nfe][s] for s in (0, 1, 2)]  # seed 3 has no fm value
        mean, diffs, clear = paired_verdict(TAB, "fm", "eps", nfe)
        assert diffs == pytest.approx(d) and mean == pytest.approx(statistics.fmean(d))
        assert clear == (all(x > 0 for x in d) or all(x < 0 for x in d))
    assert paired_verdict(TAB, "fm", "eps", 5)[2] and paired_verdict(TAB, "eps", "fm", 5)[2]
    mean20, _, clear20 = paired_verdict(TAB, "fm", "eps", 20)
    assert mean20 < 0 and not clear20  # planted: a verdict from the mean's sign would call this clear


def test_paired_verdict_refuses_a_pair_with_no_common_seed() -> None:
    with pytest.raises(ValueError, match=r"no seed has both 'fm' and 'ddim' at NFE 5"):
        paired_verdict(TAB, "fm", "ddim", 5)
