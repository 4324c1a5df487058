"""cli/info.py: what ``ddim-lesson info`` prints from a checkpoint's (untrusted) JSON. Control characters never
reach the terminal, long fields are cut, and a malformed field is shown as malformed instead of raising."""

from __future__ import annotations

import pytest

from ddim_lesson.cli.info import MAX_FIELD, info_lines, safe_text
from ddim_lesson.core.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(1000, 1e-4, 0.02)
META = {"model": {"type": "MLP", "config": {"hidden": 128, "dims": [1, 2]}}, "dataset": "two-moons", "steps": 500,
        "device": "cpu", "wall_time_s": 90, "command": "ddim-lesson train", "final_loss": 0.123456789,
        "metrics": {"near": 0.97}, "loss_history": [1.0, 0.5, 0.25], "torch": "2.3"}


def _fields(meta, training=False) -> dict[str, str]:
    rows = info_lines(meta, 12345, SCHEDULE, "/m/model", training)
    assert all(isinstance(v, str) for _, v in rows)
    return dict(rows)


def test_safe_text_drops_control_characters_keeps_text_and_cuts_long_fields():
    assert safe_text("a\x1b[31mred\x1b[0m\tb\nc\x7f\x9bd") == "a[31mred[0m b cd"
    assert safe_text("ünïcode ✓") == "ünïcode ✓"  # printable text passes untouched
    long = safe_text("x" * 1000)
    assert len(long) == MAX_FIELD and long.endswith("…")
    assert safe_text("y" * MAX_FIELD) == "y" * MAX_FIELD  # exactly at the limit: not cut
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in safe_text("".join(map(chr, range(256)))))


def test_a_good_checkpoint_is_described_field_by_field():
    f = _fields(META)
    assert f["params"] == "12,345" and f["type"] == "MLP" and f["config"] == "hidden=128 dims=1,2"
    assert f["wall time"] == "90 s (1.5 min)"
    assert f["metrics"] == "final_loss=0.12346, near=0.97"
    assert f["loss"] == "1.0000 -> 0.2500 (3 points)"
    assert f["schedule"].startswith(SCHEDULE.kind) and "T=1000" in f["schedule"]
    assert f["kind"].startswith("model") and _fields(META, training=True)["kind"].startswith("training checkpoint")


@pytest.mark.parametrize("key, value, field, shown", [
    ("final_loss", "abc", "metrics", "final_loss=? (malformed), near=0.97"),
    ("final_loss", float("nan"), "metrics", "final_loss=? (malformed), near=0.97"),
    ("loss_history", [1.0, "x"], "loss", "? (malformed: 2 points)"),
    ("loss_history", "not a list", "loss", "no history"),
    ("wall_time_s", True, "wall time", "?"),
    ("model", "a string", "type", "?"),
    ("metrics", ["a", "list"], "metrics", "final_loss=0.12346"),
    ("command", "rm -rf /\x1b]0;owned\x07", "command", "rm -rf /]0;owned"),
])
def test_a_malformed_field_is_shown_as_such_and_the_rest_still_prints(key, value, field, shown):
    f = _fields({**META, key: value})
    assert f[field] == shown
    assert f["dataset"] == "two-moons" and len(f) == 14


def test_metadata_that_is_not_a_mapping_still_prints_every_field():
    f = _fields(["not", "a", "dict"])
    assert f["type"] == "?" and f["loss"] == "no history" and f["metrics"] == "none recorded" and len(f) == 14
