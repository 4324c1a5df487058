"""Reading a committed result for a notebook (records.load_results): its JSON, its Markdown by section, and the
provenance lines kept in the file but out of the default view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddim_lesson.evaluate import records
from ddim_lesson.evaluate.records import hide_provenance, load_results, machine_line

MACHINE = {"platform": "Linux-x", "processor": "x86_64", "cpu_count": 2, "torch_threads": 1, "torch": "2.5",
           "load_avg_1min": 3.5}


def write(folder: Path, name: str, data: dict, md: str) -> None:
    (folder / f"{name}.json").write_text(json.dumps(data))
    (folder / f"{name}.md").write_text(md)


def test_sections_json_and_provenance(tmp_path: Path) -> None:
    data = {"machine": MACHINE, "config": {"device": "cpu"}, "git_commit": "abc123", "cells": {"S=10": {"fid": 7.5}}}
    line = machine_line(data)  # what every results writer appends
    md = (f"# Title\n\nintro text\n\n## First\n\nbody one\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Second\n\n"
          f"body two\n\n{line}\n")
    write(tmp_path, "demo", data, md)
    res = load_results("demo", tmp_path)
    assert res is not None and res.data == data  # the JSON as committed
    assert list(res.sections) == ["", "First", "Second"]
    assert res.markdown("First") == "body one\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    assert res.markdown("Second") == "body two"
    assert res.provenance == (line,)
    whole = res.markdown()
    for hidden in ("Machine:", "abc123", "load average", "Linux-x"):
        assert hidden not in whole  # out of the learner's way by default
        assert hidden in res.markdown(provenance=True)  # shown when asked
    for kept in ("# Title", "intro text", "## First", "body one", "## Second", "body two"):
        assert kept in whole
    assert whole._repr_markdown_() == whole  # a notebook renders it as Markdown
    assert md.replace(line, "").split() == whole.split()  # nothing else dropped or added
    with pytest.raises(ValueError, match="no section 'Third'; allowed: 'First', 'Second'"):
        res.markdown("Third")
    live = hide_provenance(md)  # a table rendered live, shown without the lines
    assert "abc123" not in live and "body two" in live and live.split() == md.replace(line, "").split()


def test_a_planted_filter_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter that drops no line (the old notebooks' view) leaves the commit in the default Markdown."""
    data = {"machine": MACHINE, "config": {"device": "cpu"}, "git_commit": "abc123"}
    write(tmp_path, "demo", data, f"# T\n\n{machine_line(data)}\n")
    monkeypatch.setattr(records, "is_provenance", lambda line: False)
    assert "abc123" in load_results("demo", tmp_path).markdown()


def test_missing_and_bad_names(tmp_path: Path) -> None:
    assert load_results("not_generated_yet", tmp_path) is None
    (tmp_path / "only.json").write_text('{"x": 1}')  # JSON without its Markdown: the data, an empty view
    res = load_results("only", tmp_path)
    assert res is not None and res.data == {"x": 1} and res.markdown() == "" and res.provenance == ()
    for bad in ("", "../table1", "sub/table1", ".hidden"):
        with pytest.raises(ValueError, match="stem of a file in benchmarks/results"):
            load_results(bad)


@pytest.mark.parametrize("name", ["table1", "table2", "fid_spread", "spacing_fid", "solver_fid", "guidance"])
def test_every_committed_result_loads_without_its_provenance(name: str) -> None:
    res = load_results(name)
    if res is None:
        pytest.skip(f"benchmarks/results/{name}.json is not in this checkout")
    md = (records.RESULTS_DIR / f"{name}.md").read_text()
    assert res.data == json.loads((records.RESULTS_DIR / f"{name}.json").read_text())
    assert len(res.provenance) == 1 and res.provenance[0] in md  # each file says where it was measured, once
    assert res.data["git_commit"] in md and res.data["git_commit"] not in res.markdown()
    assert "|---" in res.markdown()  # the tables are there
    assert all(line in md for line in res.markdown().splitlines())  # nothing invented
