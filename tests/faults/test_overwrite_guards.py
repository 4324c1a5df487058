"""Commands never overwrite what they should keep, and check their flags before any work.

- ``export`` refuses a destination that is the source or any training checkpoint;
- ``train`` refuses to start afresh over a run's checkpoint, and ``--resume`` names every flag that
  differs from the checkpoint (and refuses when there is nothing to resume);
- ``--out`` is checked for writability before training, sampling, inverting or evaluating;
- ``eval`` writes to runs/eval/ by default, and its resume key keeps a ``--n 2`` trial from replacing
  the committed n = 500 cells.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import ddim_lesson.cli.table_commands as table_commands
import ddim_lesson.evaluate as evaluate
from ddim_lesson.cli.main import main
from ddim_lesson.store.checkpoints import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TOY = ["train", "--dataset", "two-moons", "--steps", "10", "--batch-size", "16", "--mlp-hidden", "16",
       "--mlp-depth", "1", "--n-toy", "200", "--device", "cpu", "--no-progress", "--ckpt-every", "5"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("DDIM_LESSON_THREADS", str(torch.get_num_threads()))  # no load measurement, no change


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(rc, err, *phrases):
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("torch uses")]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("ddim-lesson: error: "), err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


@pytest.fixture
def stopped_run(tmp_path, capsys):
    """A toy run stopped at step 5 of 10: a training checkpoint and no model yet."""
    out = tmp_path / "run"
    rc, _, err = run(capsys, *TOY, "--stop-after", "5", "--out", out)
    assert rc == 0 and not (out / "model.safetensors").exists(), err
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- export --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dest", ["RUN", "RUN/checkpoint", "RUN/checkpoint.safetensors", "RUN/checkpoint.prev",
                                  "OTHER/checkpoint"])
def test_export_refuses_the_source_and_any_training_checkpoint(stopped_run, capsys, dest):
    other = stopped_run.parent / "other"
    shutil.copytree(stopped_run, other)
    rc, _, err = run(capsys, *TOY, "--stop-after", "5", "--resume", "--out", stopped_run)  # now with a .prev
    assert rc == 0 and (stopped_run / "checkpoint.prev.safetensors").exists(), err
    before, before_other = _snapshot(stopped_run), _snapshot(other)
    target = dest.replace("RUN", str(stopped_run)).replace("OTHER", str(other))
    rc, _, err = run(capsys, "export", stopped_run, target)
    line = one_line_error(rc, err)
    assert any(p in line for p in ("is a folder", "being exported", "is a training checkpoint")), line
    assert _snapshot(stopped_run) == before and _snapshot(other) == before_other  # nothing was touched
    rc, _, err = run(capsys, *TOY, "--resume", "--out", stopped_run)  # and the run still resumes to the end
    assert rc == 0 and read_checkpoint(stopped_run / "checkpoint")[1]["steps"] == 10, err


def test_export_to_a_new_name_or_the_runs_model_works(stopped_run, tmp_path, capsys):
    rc, out, err = run(capsys, "export", stopped_run, tmp_path / "shipped")
    assert rc == 0 and "wrote the EMA weights" in out, err
    rc, out, err = run(capsys, "export", stopped_run, stopped_run / "model")
    assert rc == 0, err
    tensors, _ = read_checkpoint(stopped_run / "model")
    assert not any(k.startswith(("ema.", "opt.")) for k in tensors)


# -- --resume checks its flags ----------------------------------------------------------------------
@pytest.mark.parametrize("flags, phrases", [
    (["--mlp-hidden", "32"], ["--mlp-hidden 32 (the checkpoint has 16)"]),
    (["--dataset", "swiss-roll"], ["--dataset swiss-roll (the checkpoint has two-moons)"]),
    (["--steps", "3"], ["--steps 3 is below the 5 steps already done"]),
    (["--lr", "0.01", "--seed", "3"], ["--lr 0.01 (the checkpoint has 0.002)", "--seed 3 (the checkpoint has 0)"]),
])
def test_resume_names_each_flag_that_differs(stopped_run, capsys, flags, phrases):
    before = _snapshot(stopped_run)
    rc, _, err = run(capsys, *TOY, *flags, "--resume", "--out", stopped_run)
    one_line_error(rc, err, "--resume: the flags differ from the checkpoint", *phrases)
    assert _snapshot(stopped_run) == before


def test_resume_with_nothing_to_resume_is_refused(tmp_path, capsys):
    rc, _, err = run(capsys, *TOY, "--resume", "--out", tmp_path / "empty")
    one_line_error(rc, err, "--resume: there is no checkpoint in", "drop --resume")
    assert not (tmp_path / "empty" / "checkpoint.safetensors").exists()


def test_starting_afresh_over_a_run_is_refused(stopped_run, capsys):
    before = _snapshot(stopped_run)
    rc, _, err = run(capsys, *TOY, "--out", stopped_run)
    one_line_error(rc, err, "already holds a training checkpoint", "pass --resume")
    assert _snapshot(stopped_run) == before


def test_resume_with_more_steps_continues(stopped_run, capsys):
    rc, _, err = run(capsys, *TOY, "--resume", "--out", stopped_run)
    assert rc == 0 and "resuming from" in err and "(step 5)" in err, err


# -- output paths are checked before the work --------------------------------------------------------
def _forbid(monkeypatch, *targets):
    def started(*a, **k):
        raise AssertionError("the work started before --out was checked")

    for t in targets:
        monkeypatch.setattr(t, started)


@pytest.mark.parametrize("bad", ["FILE/sub/out", "/proc/ddim-lesson-test/out"])
@pytest.mark.parametrize("command", ["train", "sample", "invert", "eval", "export"])
def test_an_unwritable_out_fails_before_any_work(tmp_path, capsys, monkeypatch, command, bad):
    (tmp_path / "FILE").write_text("a file, not a folder")
    out = bad.replace("FILE", str(tmp_path / "FILE"))
    _forbid(monkeypatch, "ddim_lesson.train.loop.load_dataset", "ddim_lesson.cli.commands.load_any",
            "ddim_lesson.cli.table_commands.run_table1", "ddim_lesson.store.checkpoints.load_newest")
    argv = {"train": [*TOY, "--out", out], "sample": ["sample", "--out", out + ".png"],
            "invert": ["invert", "--out", out + ".png"], "eval": ["eval", "table1", "--out", out],
            "export": ["export", tmp_path / "run", out]}[command]
    rc, _, err = run(capsys, *argv)
    one_line_error(rc, err, "cannot be")


# -- eval keeps the committed results ----------------------------------------------------------------
@pytest.mark.parametrize("table", ["table1", "table2", "spread"])
def test_eval_writes_outside_the_committed_results_by_default(table):
    import argparse

    p = argparse.ArgumentParser()
    table_commands.add_eval_args(p)
    cfg = table_commands.config_from_args(p.parse_args([table]), table)
    assert cfg.out.startswith("runs/eval/") and "benchmarks" not in cfg.out


@pytest.fixture
def committed_copy(tmp_path):
    shutil.copy(ROOT / "benchmarks" / "results" / "table1.json", tmp_path / "table1.json")
    return tmp_path / "table1"


@pytest.mark.parametrize("change", [{"n": 2}, {"n_at": {10: 2}}, {"seed": 1}, {"batch_size": 100}])
def test_a_trial_with_other_settings_never_replaces_committed_cells(committed_copy, monkeypatch, change):
    before = committed_copy.with_suffix(".json").read_bytes()
    _forbid(monkeypatch, "ddim_lesson.evaluate.table1.fid_of_cell")
    cfg = evaluate.Table1Config(steps=(10,), etas=(0.0,), sigma_hat=False, floor=False, out=str(committed_copy),
                                **{"n": 500, **change})
    with pytest.raises(ValueError, match="holds results for other settings .*differ.*pass another --out"):
        evaluate.run_table1(cfg, log=lambda s: None, progress=False)
    assert committed_copy.with_suffix(".json").read_bytes() == before


def test_the_same_settings_resume_the_committed_table_without_sampling(committed_copy, monkeypatch):
    """The committed file predates n in the key: its config stands in for it, so an n = 500 run resumes."""
    _forbid(monkeypatch, "ddim_lesson.evaluate.table1.fid_of_cell")
    cells = json.loads(committed_copy.with_suffix(".json").read_text())["cells"]
    cfg = evaluate.Table1Config(steps=(10, 20), n=500, floor=False, out=str(committed_copy))
    res = evaluate.run_table1(cfg, log=lambda s: None, progress=False)
    assert res["cells"] == cells and res["resume_key"]["n"] == 500
