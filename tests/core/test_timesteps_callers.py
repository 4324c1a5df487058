"""Every ddim_timesteps call in the package passes the model's schedule, so that a cosine model's grid is its own
(it starts below T - 1; its log-SNR grid differs from the linear one). Forgetting it once made the spacing table
record the linear schedule's timesteps for a cosine model. The calls without one are listed here, each with why."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "ddim_lesson"
WITHOUT_SCHEDULE = {  # module: why its call takes no schedule
    "core/guidance.py": "SDEdit walks [0, t0] with T = t0 + 1; t0 already comes from schedule.sampling_T",
}


def calls_without_schedule(source: str) -> list[int]:
    """Line numbers of ddim_timesteps(...) calls in ``source`` with no schedule= keyword."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name == "ddim_timesteps" and not any(k.arg == "schedule" for k in node.keywords):
                out.append(node.lineno)
    return out


def test_package_calls_pass_the_schedule():
    found = {p.relative_to(PKG).as_posix(): lines for p in sorted(PKG.rglob("*.py"))
             if (lines := calls_without_schedule(p.read_text()))}
    assert set(found) <= set(WITHOUT_SCHEDULE), {k: v for k, v in found.items() if k not in WITHOUT_SCHEDULE}


def test_the_check_sees_a_forgotten_schedule():
    planted = 'res["timesteps"] = {sp: ddim_timesteps(schedule.T, cfg.steps, sp).tolist() for sp in cfg.spacings}'
    assert calls_without_schedule(planted) == [1]  # the spacing table's old line
    assert calls_without_schedule(planted.replace("sp)", "sp, schedule=schedule)")) == []
    assert calls_without_schedule("x = schedules.ddim_timesteps(T, 5)") == [1]
