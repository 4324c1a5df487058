"""The second red team's faults on the new surfaces, each with the behaviour a user expects.

Item 4 (worst: script in the learner's JupyterLab from a results file): every string a results file or
a widget puts into Markdown or HTML is escaped. The check renders the Markdown with mistune and looks
for an HTML tag made from the hostile string; the same renderer on the unescaped text finds one, so
the check can fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import mistune
import pytest
import torch

from ddim_lesson.evaluate import records

HOSTILE = "x` <img src=x onerror=alert(1)> `"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _poison(obj):
    """Every string value of a record replaced by the hostile string (keys kept, so the tables still build)."""
    if isinstance(obj, str):
        return HOSTILE
    if isinstance(obj, dict):
        return {k: _poison(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_poison(v) for v in obj]
    return obj


def _tags(text: str) -> bool:
    """Whether ``text``, rendered as Markdown, holds the hostile string's <img> tag (whose onerror runs script)."""
    return "<img" in mistune.html(text)


def test_the_check_sees_an_unescaped_string() -> None:
    """Planted bug: the hostile string interpolated as it is, inside back-quotes, renders an <img> tag."""
    assert _tags(f"Model `{HOSTILE}` (weights)")
    assert not _tags(f"Model `{records.md_text(HOSTILE)}` (weights)")


def _records():
    from ddim_lesson.evaluate.fid_spread import spread_markdown
    from ddim_lesson.evaluate.guidance_tables import guidance_markdown
    from ddim_lesson.evaluate.solver_fid import solver_fid_markdown
    from ddim_lesson.evaluate.spacing_fid import spacing_fid_markdown
    from ddim_lesson.evaluate.table1 import table1_markdown
    from ddim_lesson.evaluate.table2 import table2_markdown

    return [("table1", table1_markdown), ("table2", table2_markdown), ("fid_spread", spread_markdown),
            ("spacing_fid", spacing_fid_markdown), ("solver_fid", solver_fid_markdown), ("guidance", guidance_markdown)]


@pytest.mark.parametrize(("name", "markdown"), _records(), ids=[n for n, _ in _records()])
def test_results_markdown_escapes_every_string(name: str, markdown) -> None:
    res = json.loads((RESULTS / f"{name}.json").read_text())
    plain = markdown(res)  # the committed record renders
    assert not _tags(plain)
    rendered = 0
    for field in ("model", "machine", "git_commit"):
        if field not in res:
            continue
        bad = dict(res, **{field: _poison(res[field])})
        try:
            text = markdown(bad)
        except (KeyError, TypeError, ValueError, AttributeError):  # a poisoned field the table computes with
            continue
        rendered += 1
        assert not _tags(text), (name, field)
        assert records.md_text(HOSTILE) in text or HOSTILE[:8] not in text, (name, field)
        assert "<img" not in text and "`x`" not in text
    assert rendered >= 2, "the poisoned records did not render: the check checked nothing"


def test_machine_line_escapes() -> None:
    res = {"machine": {"platform": HOSTILE, "processor": "p", "cpu_count": 2, "torch_threads": 1, "torch": "2"},
           "config": {"device": HOSTILE}, "git_commit": HOSTILE}
    line = records.machine_line(res)
    assert not _tags(line) and "<img" not in line


def test_thread_bench_markdown_escapes() -> None:
    from ddim_lesson.course.thread_bench import thread_bench_markdown

    res = json.loads((RESULTS / "threads.json").read_text())
    res["idle"]["reason"] = HOSTILE
    assert not _tags(thread_bench_markdown(res))


def test_forward_explorer_escapes_the_schedule_name() -> None:
    import torch

    from ddim_lesson import NoiseSchedule
    from ddim_lesson.course.widgets.forward import forward_explorer

    ex = forward_explorer(torch.zeros(1, 1, 8, 8), schedules={HOSTILE: NoiseSchedule.linear(100)}, t=10)
    assert "<img" not in ex.readout.value and "&lt;img" in ex.readout.value


def test_kit_error_path_escapes() -> None:
    import ipywidgets as w

    from ddim_lesson.course.widgets.kit import RunCache, connect

    ex = SimpleNamespace(cache=RunCache(), image=w.Image(), readout=w.HTML(), last=None)
    slider = w.IntSlider(value=1)

    def compute(k):
        raise ValueError(f"bad value {HOSTILE}")

    connect(ex, [slider], lambda: slider.value, compute, lambda run, cached: "", show_errors=True)
    assert "<img" not in ex.readout.value and "&lt;img" in ex.readout.value


def test_sampler_and_solver_readouts_escape() -> None:
    from ddim_lesson.course.widgets.sampler import explorer_readout
    from ddim_lesson.course.widgets.solver import solver_readout

    run = SimpleNamespace(steps=3, eta=0.0, seed=0, spacing=HOSTILE, model_calls=3, seconds=0.1)
    assert "<img" not in explorer_readout(run, False)
    run = SimpleNamespace(solver=HOSTILE, budget=3, calls=3, spacing=HOSTILE, error=0.1, seconds=0.1,
                          samples=torch.zeros(2, 1, 4, 4))
    assert "<img" not in solver_readout(run, True)


# -- item 2: a checkpoint read reserves what the file holds, not the 4 GiB limit --------------------
def test_read_regular_reserves_only_the_file_size(tmp_path: Path) -> None:
    """With a 1 TiB limit, reading a 3-byte file must not ask for 1 TiB (the old f.read(limit + 1) did)."""
    from ddim_lesson.store.checkpoint_files import CheckpointError, read_regular

    f = tmp_path / "small.bin"
    f.write_bytes(b"abc")
    assert read_regular(f, limit=1 << 40) == b"abc"
    with pytest.raises(CheckpointError, match="more than a checkpoint may be"):
        read_regular(f, limit=2)


def test_info_runs_under_an_address_space_limit() -> None:
    """`prlimit --as=7000000000 ddim-lesson info two-moons`: the red team's reproduction."""
    import os
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (7_000_000_000, 7_000_000_000))

    out = subprocess.run([sys.executable, "-m", "ddim_lesson", "info", "two-moons"], preexec_fn=limit,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, DDIM_LESSON_THREADS="1"))
    assert out.returncode == 0, out.stderr
    assert "two-moons" in out.stdout or "mlp" in out.stdout.lower()


# -- item 6: images are written like checkpoints (temp file, then rename) ---------------------------
def test_an_interrupted_image_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import ddim_lesson.course.images as images

    out = tmp_path / "samples.png"
    out.write_bytes(b"the older image")

    def cut_short(img, fp, format=None, **kw):  # noqa: A002 - PIL's name
        (open(fp, "wb") if isinstance(fp, str) else fp).write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(images.Image.Image, "save", cut_short)  # the encoder of save_grid
    with pytest.raises(KeyboardInterrupt):
        images.save_grid(torch.zeros(4, 1, 8, 8), out)
    assert out.read_bytes() == b"the older image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.png"]  # no temp file left


def test_an_image_replaces_a_symlink_rather_than_writing_through_it(tmp_path: Path) -> None:
    import torch

    from ddim_lesson.cli.commands import save_scatter
    from ddim_lesson.course.images import save_grid

    for k, write in enumerate((lambda p: save_grid(torch.zeros(4, 1, 8, 8), p),
                               lambda p: save_scatter(torch.zeros(8, 2), p, "two-moons"))):
        target, link = tmp_path / f"precious{k}.txt", tmp_path / f"out{k}.png"
        target.write_text("keep me")
        link.symlink_to(target)
        write(link)
        assert target.read_text() == "keep me" and not link.is_symlink()
        assert link.read_bytes()[:4] == b"\x89PNG"


# -- item 7: one command per --out --------------------------------------------------------------
TOY = ["train", "--dataset", "two-moons", "--steps", "6", "--batch-size", "16", "--mlp-hidden", "16",
       "--mlp-depth", "1", "--n-toy", "200", "--device", "cpu", "--no-progress", "--ckpt-every", "3"]


def test_a_second_train_on_one_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ddim_lesson.cli.main import main
    from ddim_lesson.store.locks import out_lock

    out = tmp_path / "run"
    with out_lock(out, folder=True):  # the first run, still going
        assert main(TOY + ["--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "is in use by another ddim-lesson command" in err and f"pid {__import__('os').getpid()}" in err
        assert sorted(p.name for p in out.iterdir()) == [".ddim-lesson.lock"]  # the second wrote nothing
    assert not out.exists()  # the lock was all the folder held: removed with it
    assert main(TOY + ["--out", str(out)]) == 0  # free again
    assert (out / "model.safetensors").exists() and not (out / ".ddim-lesson.lock").exists()


def test_a_second_eval_on_one_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ddim_lesson.cli.main import main
    from ddim_lesson.store.locks import out_lock

    out = tmp_path / "table1"
    with out_lock(out, folder=False):
        code = main(["eval", "table1", "--steps", "2", "--etas", "0", "--n", "4", "--threads", "1",
                     "--out", str(out)])
    assert code == 2 and "in use by another ddim-lesson command" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_folder_a_killed_run_left_does_not_block_a_fresh_start(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """Killed before its first checkpoint: a stale lock file and a half-written checkpoint are all it left."""
    from ddim_lesson.cli.main import main

    out = tmp_path / "run"
    out.mkdir()
    (out / ".ddim-lesson.lock").write_text("pid 999999 (ddim-lesson train), since 00:00:00")
    (out / ".checkpoint.safetensors.abc123.tmp").write_bytes(b"half")
    assert main(TOY + ["--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "there is no checkpoint in" in err and "drop --resume" in err
    assert main(TOY + ["--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "model.safetensors").exists() and not list(out.glob(".*.tmp"))


# -- item 8: export and train never write over the shipped models silently -------------------------
@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped two-moons files, standing in for ddim_lesson/weights (a regression must not
    damage the real folder)."""
    import shutil

    import ddim_lesson.train.train_state as train_state
    from ddim_lesson.store.pretrained import WEIGHTS_DIR

    folder = tmp_path / "weights"
    folder.mkdir()
    for ext in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"two-moons{ext}", folder / f"two-moons{ext}")
    monkeypatch.setattr(train_state, "WEIGHTS_DIR", folder)
    return folder


def test_export_refuses_an_existing_model_without_replace(tmp_path: Path, shipped: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    from ddim_lesson.cli.main import main

    run = tmp_path / "run"
    assert main(TOY + ["--out", str(run)]) == 0
    model = shipped / "two-moons"
    before = model.with_suffix(".safetensors").read_bytes()
    assert main(["export", str(run / "checkpoint"), str(model)]) == 2
    err = capsys.readouterr().err
    assert "already holds a model" in err and "--replace" in err
    assert model.with_suffix(".safetensors").read_bytes() == before
    dst = tmp_path / "mine"
    assert main(["export", str(run / "checkpoint"), str(dst)]) == 0
    stamp = dst.with_suffix(".safetensors").stat().st_mtime_ns
    assert main(["export", str(run / "checkpoint"), str(dst) + ".safetensors"]) == 2
    assert dst.with_suffix(".safetensors").stat().st_mtime_ns == stamp
    assert main(["export", str(run / "checkpoint"), str(dst), "--replace"]) == 0
    assert dst.with_suffix(".safetensors").stat().st_mtime_ns != stamp


def test_export_onto_the_training_checkpoint_names_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """export onto the run's own checkpoint: refused as the training checkpoint it is, with or without --replace
    (a hint to pass --replace would only lead to the same refusal), and the checkpoint is untouched."""
    from ddim_lesson.cli.main import main
    from ddim_lesson.store.checkpoints import is_training_state

    run = tmp_path / "run"
    assert main(TOY + ["--out", str(run)]) == 0
    ckpt = run / "checkpoint.safetensors"
    before = ckpt.read_bytes()
    assert is_training_state(run / "checkpoint") and not is_training_state(run / "model")
    for dst in (run / "checkpoint", ckpt, run / "checkpoint.json"):
        for extra in ([], ["--replace"]):
            assert main(["export", str(run / "checkpoint"), str(dst), *extra]) == 2
            err = capsys.readouterr().err
            assert "training checkpoint" in err and "--replace" not in err, err
    assert ckpt.read_bytes() == before


def test_train_refuses_the_shipped_models_folder(shipped: Path, capsys: pytest.CaptureFixture) -> None:
    from ddim_lesson.cli.main import main

    before = sorted(p.name for p in shipped.iterdir())
    for out in (shipped, shipped / "sub"):
        assert main(TOY + ["--out", str(out)]) == 2
        assert "shipped models' folder" in capsys.readouterr().err
    assert sorted(p.name for p in shipped.iterdir()) == before


# -- also confusing: eval --out /dev/full wrote files into /dev -----------------------------------
def test_eval_refuses_a_device_as_out(capsys: pytest.CaptureFixture) -> None:
    from ddim_lesson.cli.main import main

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    before = set(Path("/dev").iterdir())
    code = main(["eval", "table1", "--steps", "2", "--etas", "0", "--n", "4", "--threads", "1", "--out", "/dev/full"])
    assert code == 2 and "/dev" in capsys.readouterr().err
    assert set(Path("/dev").iterdir()) == before
