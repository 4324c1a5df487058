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

from ddim_lesson.evaluate import records

HOSTILE = "x` <img src=x onerror=alert(1)> `"
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


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
    from ddim_lesson.evaluate.guidance_tables import guidance_markdown
    from ddim_lesson.evaluate.solver_fid import solver_fid_markdown
    from ddim_lesson.evaluate.spacing_fid import spacing_fid_markdown
    from ddim_lesson.evaluate.spread import spread_markdown
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
    run = SimpleNamespace(solver=HOSTILE, budget=3, calls=3, spacing=HOSTILE, error=0.1, seconds=0.1)
    assert "<img" not in solver_readout(run, True)


# -- item 2: a checkpoint read reserves what the file holds, not the 4 GiB limit --------------------
def test_read_regular_reserves_only_the_file_size(tmp_path: Path) -> None:
    """With a 1 TiB limit, reading a 3-byte file must not ask for 1 TiB (the old f.read(limit + 1) did)."""
    from ddim_lesson.store.ckpt_files import CheckpointError, read_regular

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
