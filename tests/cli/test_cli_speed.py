"""cli/speed_script.py and benchmarks/speed.py: flags through the bridge, one-line errors, speed.json written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ddim_lesson.cli import speed_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"


@pytest.fixture
def fake_run(monkeypatch):
    """run_speed replaced by a stub that records its config (the real one takes minutes)."""
    seen = []

    def run(cfg, log=print, **kw):
        assert kw == {}  # the loss is not handed down by the command: evaluate takes diffusion_loss from core
        seen.append(cfg)
        log("device: fake")
        return {"device": "fake", "args": {"rounds": cfg.rounds, "mlp_sweep": cfg.mlp_sweep}, "ratios": {}}

    monkeypatch.setattr(speed_script, "run_speed", run)
    monkeypatch.setenv("DDIM_LESSON_THREADS", "1")
    return seen


def test_flags_reach_the_config_and_the_report_is_written(fake_run, tmp_path, capsys):
    out = tmp_path / "sub" / "speed.json"
    speed_script.speed_main(None, ["--rounds", "5", "--mlp-sweep", "", "--device", "cpu", "--json", str(out)])
    cfg = fake_run[0]
    assert (cfg.rounds, cfg.mlp_sweep, cfg.device, cfg.json) == (5, (), "cpu", str(out))
    assert json.loads(out.read_text()) == {"device": "fake", "args": {"rounds": 5, "mlp_sweep": []}, "ratios": {}}
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err.startswith("torch uses 1 thread(s)") and lines[0] == "device: fake"  # stdout: the report only
    assert lines[-1].startswith("total ") and lines[-1].endswith(" s")


def test_quick_and_the_sweep_flag(fake_run):
    speed_script.speed_main(None, ["--quick", "--mlp-sweep", "2,8"])
    assert (fake_run[0].rounds, fake_run[0].mlp_sweep) == (3, (2,))
    speed_script.speed_main(None, [])
    assert fake_run[1].mlp_sweep == (1, 32)


@pytest.mark.parametrize(("argv", "message"), [
    (["--rounds", "0"], "rounds must be an integer >= 1, got 0"),
    (["--rounds", "x"], "argument --rounds: invalid int value: 'x'"),
    (["--mlp-sweep", "1,a"], "expected comma-separated batch sizes like 1,32, got '1,a'"),
    (["--device", "nowhere"], "unknown device 'nowhere'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_a_bad_flag_is_one_line_and_status_2_before_any_work(fake_run, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        speed_script.speed_main(None, argv)
    assert exit_.value.code == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("speed.py: error: ") and message in err.err
    assert err.err.count("\n") == 1 and not fake_run


def test_an_unwritable_json_path_is_refused_before_the_run(fake_run, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    with pytest.raises(SystemExit) as exit_:
        speed_script.speed_main(None, ["--json", str(tmp_path / "f" / "speed.json")])
    assert exit_.value.code == 2
    assert "--json" in capsys.readouterr().err and not fake_run


def test_the_script_prints_its_help_and_a_bad_value_in_one_line():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--mlp-sweep" in done.stdout and "--quick" in done.stdout
    assert "python benchmarks/speed.py --quick" in done.stdout  # the script's usage lines
    bad = subprocess.run([sys.executable, str(SCRIPT), "--unet-batch", "0"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "speed.py: error: unet_batch must be an integer >= 1, got 0\n"
