"""The benchmark scripts' commands: cli/guidance_script, threads_script, classifier_script and gallery_script.

Each script's slow work (the guidance tables, the thread bench, training the classifier, running the
notebooks) is replaced by a stub that records what it was given; the command's own job is checked:
flags reach the config (compared with the dataclass built directly), results land where they should,
atomically, and a bad value is one line on stderr and exit status 2 before any work.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

import ddim_lesson.store.pretrained as pretrained_module
import ddim_lesson.train.classifier_train as classifier_train
from ddim_lesson.cli import gallery_script, guidance_script, threads_script
from ddim_lesson.cli.classifier_script import TrainClassifierArgs, train_classifier_main
from ddim_lesson.cli.gallery_script import NOTEBOOKS, GalleryArgs, gallery_main
from ddim_lesson.cli.guidance_script import guidance_main
from ddim_lesson.cli.threads_script import threads_main
from ddim_lesson.course.thread_bench import ThreadBenchConfig, thread_bench_markdown
from ddim_lesson.evaluate.guidance_tables import GuidanceConfig
from ddim_lesson.store.device import pick_threads
from ddim_lesson.store.locks import lock_path, out_lock


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("DDIM_LESSON_THREADS", "1")


def one_line_error(capsys, run) -> str:
    """Run ``run``; it must exit with status 2 and print one ``prog: error: ...`` line on stderr, returned."""
    with pytest.raises(SystemExit) as exit_:
        run()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ": error: " in err[0], err
    return err[0]


# -- guidance_script ------------------------------------------------------------------------------
@pytest.fixture
def fake_guidance(monkeypatch):
    """run_guidance replaced by a stub recording (cfg, threads, the lock file present while it runs)."""
    seen = []

    def run(cfg, threads=""):
        seen.append((cfg, threads, lock_path(cfg.out, folder=False).exists()))
        return {"rows": len(cfg.scales)}

    monkeypatch.setattr(guidance_script, "run_guidance", run)
    monkeypatch.setattr(guidance_script, "guidance_markdown", lambda res: f"# table with {res['rows']} rows")
    return seen


def test_guidance_flags_reach_the_config_and_the_markdown_is_printed(fake_guidance, tmp_path, capsys):
    out = str(tmp_path / "g")
    guidance_main("doc", ["--parts", "tradeoff,edit", "--scales", "0,2.5,4", "--seeds", "4", "--n-per-class", "3",
                          "--steps", "7", "--out", out])
    (cfg, threads, locked), = fake_guidance
    assert cfg == GuidanceConfig(parts=("tradeoff", "edit"), scales=(0.0, 2.5, 4.0), seeds=(4,), n_per_class=3,
                                 steps=7, out=out)
    assert threads == pick_threads(apply=False).reason
    assert locked and not lock_path(out, folder=False).exists()  # held during the run, removed after it
    assert capsys.readouterr().out == "# table with 3 rows\n"


def test_guidance_refuses_an_out_another_run_holds_before_any_work(fake_guidance, tmp_path, capsys):
    out = str(tmp_path / "g")
    with out_lock(out, folder=False):
        line = one_line_error(capsys, lambda: guidance_main("doc", ["--out", out]))
    assert "is in use by another ddim-lesson command" in line and fake_guidance == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--n-per-class", "1"], "n_per_class must be an integer >= 2, got 1"),
    (["--parts", "tradeoff,nope"], "nope"),
    (["--strengths", "0"], "each of --strengths"),
    (["--scales", "1,101"], "each of --scales"),
])
def test_guidance_bad_flags_are_one_line_before_any_work(fake_guidance, tmp_path, capsys, argv, message):
    line = one_line_error(capsys, lambda: guidance_main("doc", [*argv, "--out", str(tmp_path / "g")]))
    assert message in line and fake_guidance == []


def test_guidance_refuses_an_unwritable_out_before_the_run(fake_guidance, tmp_path, capsys):
    (tmp_path / "g.json").mkdir()  # OUT.json is a folder: the results could never be written
    line = one_line_error(capsys, lambda: guidance_main("doc", ["--out", str(tmp_path / "g")]))
    assert "is a folder" in line and fake_guidance == []


# -- threads_script -------------------------------------------------------------------------------
def fake_bench_result(cfg: ThreadBenchConfig) -> dict:
    """A result shaped like run_thread_bench's, its numbers drawn at random (what the command must copy through)."""
    g = torch.Generator().manual_seed(3)
    ms = {k: {n: round(float(1 + 9 * torch.rand(1, generator=g)), 2) for n in ("1 thread", "2 threads", "chosen")}
          for k in ("idle", "one_core_busy")}
    ratios = {"busy chosen / idle 1 thread": round(ms["one_core_busy"]["chosen"] / ms["idle"]["1 thread"], 3),
              "idle chosen / idle best fixed": round(ms["idle"]["chosen"] / min(ms["idle"]["1 thread"],
                                                                               ms["idle"]["2 threads"]), 3)}
    targets = {"busy chosen / idle 1 thread": 1.5, "idle chosen / idle best fixed": 1.1}
    return {"config": vars(cfg), "cores": 2, "ratios": ratios, "targets": targets,
            "met": {k: ratios[k] <= v for k, v in targets.items()},
            **{k: {"chosen_threads": 1, "reason": f"{k} reason", "idle_cores": 1.0, "ms_per_call": v,
                   "runs_ms": {n: [x] for n, x in v.items()}} for k, v in ms.items()}}


@pytest.fixture
def fake_threads(monkeypatch):
    """pretrained and run_thread_bench replaced by stubs that record what they were asked."""
    seen = {"pretrained": [], "bench": []}
    model = object()

    def pretrained(name, *args, **kw):
        seen["pretrained"].append(name)
        return model, None

    def bench(m, cfg, progress=True):
        assert m is model  # the command times the model it loaded
        seen["bench"].append(cfg)
        return fake_bench_result(cfg)

    monkeypatch.setattr(pretrained_module, "pretrained", pretrained)
    monkeypatch.setattr(threads_script, "run_thread_bench", bench)
    return seen


def test_threads_writes_the_result_and_its_markdown_atomically(fake_threads, tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "threads"
    threads_main("doc", ["--batch", "3", "--calls", "2", "--rounds", "5", "--out", str(out)])
    assert fake_threads["pretrained"] == ["fashion-mnist"]
    cfg, = fake_threads["bench"]
    assert cfg == ThreadBenchConfig(batch=3, calls=2, rounds=5)
    written = json.loads(out.with_name("threads.json").read_text())
    want = fake_bench_result(cfg)
    assert {k: written[k] for k in want} == json.loads(json.dumps(want))  # the bench's result, copied through
    assert written["commit"] is None or isinstance(written["commit"], str)
    assert written["machine"]["torch"] == torch.__version__ and written["updated"].endswith("+00:00")
    md = out.with_name("threads.md").read_text()
    assert md == thread_bench_markdown(written)  # the Markdown is of the file that was written
    assert capsys.readouterr().out == md + "\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["threads.json", "threads.md"]  # no temporary left


def test_threads_refuses_an_unwritable_out_before_loading_the_model(fake_threads, tmp_path, capsys):
    (tmp_path / "t.json").mkdir()
    line = one_line_error(capsys, lambda: threads_main("doc", ["--out", str(tmp_path / "t")]))
    assert "is a folder" in line and fake_threads == {"pretrained": [], "bench": []}


@pytest.mark.parametrize("flag", ["--batch", "--calls", "--rounds"])
def test_threads_bad_counts_are_one_line(fake_threads, tmp_path, capsys, flag):
    line = one_line_error(capsys, lambda: threads_main("doc", [flag, "0", "--out", str(tmp_path / "t")]))
    assert f"{flag[2:]} must be an integer >= 1, got 0" in line and fake_threads["pretrained"] == []


# -- classifier_script ----------------------------------------------------------------------------
@pytest.fixture
def fake_train(monkeypatch):
    seen = []

    def train(*args):
        seen.append(args)
        return {"params": 123_456, "test_accuracy": 0.90125, "wall_time_s": 3.5}

    monkeypatch.setattr(classifier_train, "train_classifier", train)
    return seen


def test_classifier_args_reach_training_and_the_command_is_recorded_quoted(fake_train, tmp_path, capsys):
    out = str(tmp_path / "a folder with spaces" / "clf")
    argv = ["--epochs", "2", "--lr", "0.01", "--seed", "7", "--threads", "1", "--out", out]
    train_classifier_main("doc", argv)
    (got,) = fake_train
    a = TrainClassifierArgs(epochs=2, lr=0.01, seed=7, threads=1, out=out)
    assert got[:6] == (a.out, a.epochs, a.batch_size, a.lr, a.seed, a.threads)
    # the recorded command reruns what was run: the path with spaces comes back as one argument
    assert shlex.split(got[6]) == ["python", "benchmarks/train_classifier.py", *argv]
    assert shlex.split("python benchmarks/train_classifier.py " + " ".join(argv)) != shlex.split(got[6])  # planted
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"123,456 parameters, test accuracy {0.90125:.2%}, 3.5 s; saved {out}.safetensors/.json"]


def test_classifier_with_threads_0_says_what_the_rule_chose(fake_train, tmp_path, capsys):
    train_classifier_main("doc", ["--out", str(tmp_path / "clf")])
    assert fake_train[0][5] == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"torch uses {pick_threads(apply=False).reason}"] and "torch uses" not in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--lr", "0"], "lr must be a finite number in (0, 1), got 0.0"),  # the one lr rule (core.checks.check_lr)
    (["--lr", "nan"], "lr must be a finite number in (0, 1), got nan"),
    (["--lr=-1e-3"], "lr must be a finite number in (0, 1), got -0.001"),
    (["--lr", "1"], "lr must be a finite number in (0, 1), got 1.0"),
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--threads", "-1"], "threads must be an integer >= 0, got -1"),
    (["--seed", "-1"], "seed"),
])
def test_classifier_bad_flags_are_one_line_before_training(fake_train, tmp_path, capsys, argv, message):
    line = one_line_error(capsys, lambda: train_classifier_main("doc", [*argv, "--out", str(tmp_path / "c")]))
    assert message in line and fake_train == []


def test_classifier_refuses_an_unwritable_out(fake_train, tmp_path, capsys):
    (tmp_path / "c.safetensors").mkdir()
    line = one_line_error(capsys, lambda: train_classifier_main("doc", ["--out", str(tmp_path / "c")]))
    assert "is a folder" in line and fake_train == []


def test_classifier_args_refuse_an_infinite_lr():
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 1\), got inf"):
        TrainClassifierArgs(lr=float("inf"))


# -- gallery_script -------------------------------------------------------------------------------
NUMBERED = sorted(p for p in NOTEBOOKS.iterdir() if p.suffix == ".ipynb" and p.name[:2].isdigit())


def test_gallery_only_picks_those_notebooks_and_empty_picks_all():
    assert NUMBERED and GalleryArgs().notebooks() == NUMBERED
    two = [NUMBERED[0], NUMBERED[-1]]
    picked = GalleryArgs(only=f" {two[1].name[:2]} ,{two[0].name[:2]},").notebooks()
    assert picked == two  # in course order, whatever the order asked


def test_gallery_refuses_an_unknown_notebook_naming_the_known_ones():
    known = ", ".join(p.name[:2] for p in NUMBERED)
    with pytest.raises(ValueError) as e:
        GalleryArgs(only="99")
    assert str(e.value) == f"only: no notebook '99'; allowed: {known}"


@pytest.mark.parametrize(("width", "ok"), [(15, False), (16, True)])
def test_gallery_max_width_bound(width, ok):
    if ok:
        assert GalleryArgs(max_width=width).max_width == width
    else:
        with pytest.raises(ValueError, match=f"max_width must be >= 16 px, got {width}"):
            GalleryArgs(max_width=width)


@pytest.fixture
def fake_gallery(monkeypatch):
    seen = []
    monkeypatch.setattr(gallery_script, "run_gallery", lambda nbs, out, width: seen.append((nbs, out, width)))
    return seen


def test_gallery_main_runs_the_chosen_notebooks_into_out(fake_gallery, tmp_path, capsys):
    first = NUMBERED[0].name[:2]
    gallery_main("doc", ["--only", first, "--out", str(tmp_path / "img"), "--max-width", "200"])
    assert fake_gallery == [([NUMBERED[0]], tmp_path / "img", 200)]
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"torch uses {pick_threads(apply=False).reason}"] and "torch uses" not in out


def test_gallery_main_bad_flags_are_one_line_before_any_notebook_runs(fake_gallery, capsys):
    line = one_line_error(capsys, lambda: gallery_main("doc", ["--only", "99"]))
    assert "only: no notebook '99'" in line and fake_gallery == []
    line = one_line_error(capsys, lambda: gallery_main("doc", ["--max-width", "8"]))
    assert "max_width must be >= 16 px, got 8" in line and fake_gallery == []


def test_every_benchmark_script_calls_its_command():
    """benchmarks/*.py are two-line shells: each calls the command tested here with its own docstring."""
    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    for script, module, fn in (("guidance.py", "guidance_script", "guidance_main"),
                               ("threads.py", "threads_script", "threads_main"),
                               ("train_classifier.py", "classifier_script", "train_classifier_main"),
                               ("gallery.py", "gallery_script", "gallery_main")):
        text = (bench / script).read_text()
        assert f"from ddim_lesson.cli.{module} import {fn}" in text and f"{fn}(__doc__)" in text, script
