"""Red team item 3: no run can mix other settings into a results file, or rewrite its settings and provenance
without measuring anything.

- ``benchmarks/guidance.py --n-per-class 2 --seeds 7 --out <the committed file>`` averaged an N = 20 seed into
  the N = 500 rows and rewrote the settings: now refused before any work, naming each setting;
- ``eval table1`` over a subset of the committed settings rewrote the committed config and provenance
  without recomputing a cell: a run that measures nothing now leaves the file byte for byte as it was;
- ``--strengths 0`` was refused after minutes of work: now at once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import ddim_lesson.evaluate.guidance_tables as gt
from ddim_lesson.evaluate import records
from ddim_lesson.evaluate.table1 import Table1Config, run_table1

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    """Copies of the committed guidance and Table 1 results (the real ones are never written)."""
    for name in ("guidance", "table1"):
        for ext in (".json", ".md"):
            shutil.copy(RESULTS / f"{name}{ext}", tmp_path / f"{name}{ext}")
    return tmp_path


def test_guidance_refuses_other_settings_before_any_work(committed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (committed / "guidance.json").read_bytes()
    monkeypatch.setattr(gt, "load_any", lambda *a, **k: pytest.fail("loaded a model before the settings check"))
    cfg = gt.GuidanceConfig(n_per_class=2, seeds=(7,), out=str(committed / "guidance"))
    with pytest.raises(ValueError, match=r"n_per_class 2 \(the file has 50\)"):
        gt.run_guidance(cfg)
    assert (committed / "guidance.json").read_bytes() == before
    gt.check_resume(gt.GuidanceConfig(), json.loads(before), committed / "guidance.json")  # its own settings pass
    gt.check_resume(cfg, {}, committed / "new.json")  # a new file takes any settings


def test_guidance_run_with_nothing_to_do_rewrites_nothing(committed: Path) -> None:
    """The committed settings and cells: every cell is there, so neither file is written."""
    before = {p.name: p.read_bytes() for p in committed.iterdir()}
    gt.run_guidance(gt.GuidanceConfig(out=str(committed / "guidance")), threads="test")
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == before


@pytest.mark.parametrize(("field", "bad"), [("strengths", (0.0,)), ("strengths", (1.5,)), ("scales", (float("nan"),)),
                                            ("edit_scales", (-1.0,)), ("invert_scales", (1e9,))])
def test_guidance_bad_values_are_refused_at_once(field: str, bad: tuple) -> None:
    with pytest.raises(ValueError, match=field.replace("_", "-")):
        gt.GuidanceConfig(**{field: bad})


def test_table1_subset_rewrites_neither_config_nor_provenance(committed: Path) -> None:
    res = json.loads((committed / "table1.json").read_text())
    before = {p.name: p.read_bytes() for p in committed.iterdir()}
    cfg = Table1Config(steps=(10,), etas=(0.0,), sigma_hat=False, n=res["config"]["n"],
                       batch_size=res["config"]["batch_size"], out=str(committed / "table1"))
    out = run_table1(cfg, log=lambda s: None, progress=False)
    assert out["cells"] == res["cells"]
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == before  # byte for byte


def test_a_run_that_measures_more_keeps_the_wider_settings(tmp_path: Path) -> None:
    """open_results + save_results: a new cell is saved with the union of the list settings, not the narrower."""
    path = tmp_path / "t.json"
    head = {"table": "t", "config": {"steps": [10, 20, 50], "n": 4}, "machine": {}, "git_commit": "a",
            "resume_key": {"n": 4}}
    res = records.open_results(path, head)
    res["cells"]["S=10"] = {"v": 1.0}
    records.save_results(tmp_path / "t", res, lambda r: "md")
    narrow = dict(head, config={"steps": [100], "n": 4}, git_commit="b")
    res = records.open_results(path, narrow)
    assert res["config"]["steps"] == [10, 20, 50, 100]
    stamp = path.read_bytes()
    records.save_results(tmp_path / "t", res, lambda r: "md")  # nothing measured: not written
    assert path.read_bytes() == stamp and json.loads(stamp)["git_commit"] == "a"
    res["cells"]["S=100"] = {"v": 2.0}
    records.save_results(tmp_path / "t", res, lambda r: "md")
    saved = json.loads(path.read_text())
    assert saved["git_commit"] == "b" and saved["config"]["steps"] == [10, 20, 50, 100] and len(saved["cells"]) == 2
    bad = dict(head, resume_key={"n": 8})
    with pytest.raises(ValueError, match="other settings"):
        records.open_results(path, bad)
