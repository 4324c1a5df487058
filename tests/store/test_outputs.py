"""store/outputs.py: ``check_writable`` refuses an output path that cannot be written, naming why, and
creates nothing on the way (it probes the nearest existing folder with a temporary file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddim_lesson.store.outputs import check_writable


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_writable_file_or_folder_comes_back_and_nothing_is_created(tmp_path: Path):
    before = _tree(tmp_path)
    deep = tmp_path / "a" / "b" / "c"
    assert check_writable(deep, folder=True) == deep
    assert check_writable(str(deep / "out.json")) == deep / "out.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_writable(tmp_path / "old.json") == tmp_path / "old.json"  # an existing file may be replaced
    assert _tree(tmp_path) == sorted([*before, "old.json"])  # no folder made, no probe left behind


@pytest.mark.parametrize("case, pattern", [
    ("empty", r"--out is empty; pass a file name"),
    ("folder_for_a_file", r"is a folder; pass a file name"),
    ("file_for_a_folder", r"is a file; pass a folder"),
    ("under_a_file", r"cannot be created: .* is a file, not a folder"),
])
def test_each_unwritable_path_is_refused_with_its_reason(tmp_path: Path, case: str, pattern: str):
    (tmp_path / "f.txt").write_text("x")
    path, folder = {"empty": ("", False), "folder_for_a_file": (tmp_path, False),
                    "file_for_a_folder": (tmp_path / "f.txt", True),
                    "under_a_file": (tmp_path / "f.txt" / "sub" / "out.json", False)}[case]
    with pytest.raises(ValueError, match=pattern):
        check_writable(path, folder=folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_folder_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.chdir(tmp_path)
    try:
        with pytest.raises(ValueError, match=r"--samples 'ro/new/x.png' cannot be written .*pass another --samples"):
            check_writable("ro/new/x.png", what="--samples")
    finally:
        ro.chmod(0o700)


def test_the_probe_is_what_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder where the probe file cannot be made (as a full disk or a read-only mount makes it) is refused,
    with the system's reason; the same path passes once the probe works again."""
    import tempfile

    def failing(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", failing)
    with pytest.raises(ValueError, match=r"cannot be written \(No space left on device in .*\); pass another --out"):
        check_writable(tmp_path / "x.json")
    monkeypatch.undo()
    assert check_writable(tmp_path / "x.json") == tmp_path / "x.json"
