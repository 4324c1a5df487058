"""cli/fid_tool.py (``python -m ddim_lesson.cli.fid_tool``): the classifier-FID utilities' command line.

The slow parts (recomputing the shipped statistics, the FID floor over held-out images) are stubs that
return a value per call; the check is that the tool asks for each requested count once, in order, and
prints that count's own value; out-of-range counts reach the real ``fid_floor`` and come back as one line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ddim_lesson.cli import fid_tool
from ddim_lesson.evaluate.metrics import HOLDOUT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    """write_reference and fid_floor replaced by stubs; each call recorded, each floor a distinct value."""
    calls = []

    def write_reference():
        calls.append("write_reference")
        return tmp_path / "stats.safetensors"

    def fid_floor(n):
        calls.append(n)
        return 1000 / n + 0.12345

    monkeypatch.setattr(fid_tool, "write_reference", write_reference)
    monkeypatch.setattr(fid_tool, "fid_floor", fid_floor)
    return calls


def test_floor_prints_each_counts_own_value_in_order(fakes, capsys):
    fid_tool.main(["--floor", "500,20,7"])
    assert fakes == [500, 20, 7]
    want = [f"FID floor (test set vs {n} held-out training images): {1000 / n + 0.12345:.3f}" for n in (500, 20, 7)]
    assert capsys.readouterr().out.splitlines() == want


def test_write_reference_writes_once_then_the_floors(fakes, tmp_path, capsys):
    fid_tool.main(["--write-reference", "--floor", "10"])
    assert fakes == ["write_reference", 10]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"wrote {tmp_path / 'stats.safetensors'}" and out[1].endswith(f": {100.12345:.3f}")


def test_nothing_asked_says_so_on_stderr_and_does_nothing(fakes, capsys):
    fid_tool.main([])
    captured = capsys.readouterr()
    assert fakes == [] and captured.out == ""
    assert captured.err == "nothing to do: pass --write-reference or --floor N[,N...]\n"


@pytest.mark.parametrize(("floor", "message"), [("1", f"n must be in [2, {HOLDOUT}], got 1"),
                                                (str(HOLDOUT + 1), f"n must be in [2, {HOLDOUT}], got {HOLDOUT + 1}"),
                                                ("5,x", "--floor")])
def test_a_bad_count_is_one_line_and_status_2(monkeypatch, capsys, floor, message):
    with pytest.raises(SystemExit) as exit_:
        fid_tool.main(["--floor", floor])  # the real fid_floor: it refuses before any work
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("python -m ddim_lesson.cli.fid_tool: error: ") and message in err[0]


def test_runs_as_a_module_with_one_line_errors():
    run = subprocess.run([sys.executable, "-m", "ddim_lesson.cli.fid_tool", "--floor", "1"], cwd=ROOT,
                         capture_output=True, text=True, env={"DDIM_LESSON_THREADS": "1", "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"python -m ddim_lesson.cli.fid_tool: error: n must be in [2, {HOLDOUT}], got 1\n"
