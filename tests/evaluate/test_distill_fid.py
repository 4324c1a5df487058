"""evaluate.distill_fid: distilled students against the teacher's solvers at equal model calls, end to end on tiny
random UNets.

The student's cells are checked against DDIM written out here (eq. 12 on the trailing grid, written as its formula),
with a planted wrong grid that the same check catches; the teacher's cells are the solver table's cells.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CountedNet
from test_evaluate import tiny_unet
from test_flow_twin_fid import _ddim_on, _fid, _x_T

import ddim_lesson as dl
from ddim_lesson.evaluate.distill_fid import (
    DistillFIDConfig,
    distill_cost,
    distill_fid_markdown,
    run_distill_fid,
    student_sampling,
)
from ddim_lesson.evaluate.solver_fid import SolverFIDConfig, run_solver_fid

T = 50


def card(k: int, steps: int = 30, batch: int = 4) -> dict:
    """A student's card as ddim-lesson distill writes it (the fields the table reads)."""
    return {"prediction": "v", "sampling": {"steps": k, "spacing": "trailing"}, "steps": steps,
            "distill_config": {"batch_size": batch}, "rounds": [{"steps": 2 * k}, {"steps": k}], "wall_time_s": 12.5,
            "command": "ddim-lesson distill --final-steps 2", "threads": 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    teacher, student, schedule = CountedNet(tiny_unet()), CountedNet(tiny_unet(seed=3)), dl.NoiseSchedule.linear(T=T)
    out = tmp_path_factory.mktemp("dfid") / "dfid"
    cfg = DistillFIDConfig(model="tiny-teacher", students=("tiny-student-2",), solvers=("ddim", "dpmpp_2m"),
                           reference_steps=3, seeds=(0, 1), n=6, batch_size=4, out=str(out))
    res = run_distill_fid(cfg, teacher, schedule, students=[(student, card(2))], log=lambda s: None, progress=False)
    return cfg, teacher, student, schedule, res


def test_every_cell_makes_exactly_its_calls_and_a_rerun_resumes(run) -> None:
    cfg, teacher, student, schedule, res = run
    want = {"student/ddim nfe=2", "teacher/ddim nfe=2", "teacher/dpmpp_2m nfe=2", "teacher/ddim nfe=3"}
    assert set(res["cells"]) == {f"{m} seed={s}" for m in want for s in (0, 1)}
    # teacher: NFE 2 twice + the 3-step reference; 2 batches (4 + 2); 2 seeds. Student: NFE 2, 2 batches, 2 seeds
    assert (teacher.calls, student.calls) == ((2 + 2 + 3) * 2 * 2, 2 * 2 * 2)
    assert all(c["calls"] == c["nfe"] for c in res["cells"].values())
    teacher.reset()
    student.reset()
    again = run_distill_fid(cfg, teacher, schedule, students=[(student, card(2))], log=lambda s: None,
                            progress=False)
    assert (teacher.calls, student.calls) == (0, 0) and again["cells"] == res["cells"]
    with pytest.raises(ValueError, match="k = 2 cells of another student"):  # never mixed into this file
        run_distill_fid(cfg, teacher, schedule, students=[(tiny_unet(seed=9), card(2))], log=lambda s: None,
                        progress=False)


def test_student_cells_are_ddim_on_the_trailing_grid_and_a_wrong_grid_is_caught(run) -> None:
    _, _, student, schedule, res = run
    abar = schedule.alphas_cumprod.tolist()
    k, seed = 2, 1
    x_T = _x_T(seed, 6, 4)
    trailing = [round(T - i * T / k) - 1 for i in range(k)]  # [49, 24]: the grid distill nests, written out
    leading = [i * (T // k) for i in reversed(range(k))]  # [25, 0]: the planted mistake
    with torch.no_grad():
        right = _fid([_ddim_on(student, abar, trailing, x) for x in x_T])
        wrong = _fid([_ddim_on(student, abar, leading, x) for x in x_T])
    got = res["cells"][f"student/ddim nfe={k} seed={seed}"]
    assert abs(got["fid"] - right) < 1e-3 and abs(got["fid"] - wrong) > 0.05
    assert got["student_sha256"] == res["students"]["2"]["sha256"]


def test_teacher_cells_are_the_solver_tables(run, tmp_path) -> None:
    _, teacher, _, schedule, res = run
    sf = run_solver_fid(SolverFIDConfig(model="tiny-teacher", solvers=("ddim", "dpmpp_2m"), spacings=("trailing",),
                                        nfes=(2, 3), seeds=(0,), n=6, batch_size=4, out=str(tmp_path / "sf")),
                        teacher, schedule, log=lambda s: None, progress=False)
    for solver, nfe in (("ddim", 2), ("dpmpp_2m", 2), ("ddim", 3)):
        assert res["cells"][f"teacher/{solver} nfe={nfe} seed=0"]["fid"] == \
            sf["cells"][f"{solver} trailing nfe={nfe} seed=0"]["fid"]


def test_markdown_pairs_the_student_with_each_solver_seed_by_seed_and_escapes(run) -> None:
    cfg, _, _, _, res = run
    doc = json.loads(json.dumps(res))
    md = distill_fid_markdown(doc)
    for so in ("ddim", "dpmpp_2m"):
        d = [res["cells"][f"student/ddim nfe=2 seed={s}"]["fid"] - res["cells"][f"teacher/{so} nfe=2 seed={s}"]["fid"]
             for s in (0, 1)]
        assert f"| {so} | {sum(d) / 2:+.2f} ({d[0]:+.2f}, {d[1]:+.2f}) |" in md, so
    assert "| dpmpp_3m |" not in md  # a solver not measured gets no row
    # the cost row from the card: 30 training steps of batch 4 = 120 examples, 240 teacher calls
    assert "| 2 | `tiny-student-2` |" in md and "| 2 | 30 | 120 | 240 | 12.5 |" in md
    doc["students"]["2"]["command"] = "<script>x</script>|`"
    assert "<script>" not in distill_fid_markdown(doc)
    with open(f"{cfg.out}.md") as f:
        assert f.read().startswith("# Distilled students against the teacher's solvers")


def test_distill_cost_counts_from_the_card() -> None:
    c = distill_cost(card(4, steps=4000, batch=64))
    assert (c["examples"], c["teacher_calls"], c["student_calls"], c["rounds"]) == (256000, 512000, 256000, 2)


def test_students_are_checked(tmp_path) -> None:
    schedule = dl.NoiseSchedule.linear(T=T)
    cfg = DistillFIDConfig(model="t", students=("a",), seeds=(0,), n=4, batch_size=4, reference_steps=0,
                           out=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="is not a student of ddim-lesson distill"):
        run_distill_fid(cfg, tiny_unet(), schedule, students=[(tiny_unet(), {"steps": 3})], log=lambda s: None,
                        progress=False)
    with pytest.raises(ValueError, match="'leading' grid"):
        bad = card(2) | {"sampling": {"steps": 2, "spacing": "leading"}}
        run_distill_fid(cfg, tiny_unet(), schedule, students=[(tiny_unet(), bad)], log=lambda s: None,
                        progress=False)
    two = DistillFIDConfig(model="t", students=("a", "b"), seeds=(0,), n=4, batch_size=4, out=str(tmp_path / "y"))
    with pytest.raises(ValueError, match="two students take k = 2"):
        run_distill_fid(two, tiny_unet(), schedule, students=[(tiny_unet(), card(2)), (tiny_unet(1), card(2))],
                        log=lambda s: None, progress=False)
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()
    assert student_sampling(card(8), "s") == (8, "trailing")


@pytest.mark.parametrize("kwargs,match", [
    ({"solvers": ("heun",)}, "'heun'"), ({"reference_steps": -1}, "reference_steps"), ({"n": 1}, "n must"),
    ({"seeds": ()}, "at least one"), ({"students": ()}, "at least one"),
])  # fmt: skip
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DistillFIDConfig(**kwargs)


def test_the_script_runs_on_a_real_student_checkpoint(tmp_path, capsys) -> None:
    """The README's command on two tiny checkpoints: the student saved as distill saves it (v-prediction), read
    back as an ε-model, sampled by DDIM at its card's k."""
    from ddim_lesson.cli.table_commands import script_main
    from ddim_lesson.store.checkpoints import save_model

    schedule = dl.NoiseSchedule.linear(T=T)
    save_model(tmp_path / "teacher", tiny_unet(), schedule, steps=3)
    meta = card(2)
    save_model(tmp_path / "student", tiny_unet(seed=5), schedule, prediction="v", sampling=meta["sampling"],
               steps=meta["steps"], distill_config=meta["distill_config"], rounds=meta["rounds"], wall_time_s=12.5,
               command=meta["command"])
    out = tmp_path / "res"
    argv = ["--model", str(tmp_path / "teacher"), "--students", str(tmp_path / "student"), "--solvers", "ddim",
            "--reference-steps", "0", "--seeds", "0", "--n", "4", "--batch-size", "4", "--threads", "1",
            "--no-progress", "--out", str(out)]
    script_main("distill FID", "distill_fid", argv)
    res = json.loads(out.with_suffix(".json").read_text())
    assert set(res["cells"]) == {"student/ddim nfe=2 seed=0", "teacher/ddim nfe=2 seed=0"}
    assert "| student/ddim |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # the teacher given as a student: one line, naming the flag
        script_main("distill FID", "distill_fid", argv[:3] + [str(tmp_path / "teacher")] + argv[4:-1] +
                    [str(tmp_path / "other")])
    assert e.value.code == 2 and "is not a student of ddim-lesson distill" in capsys.readouterr().err
