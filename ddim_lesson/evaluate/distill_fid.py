"""Distilled students against their teacher's solver ladder: classifier FID at equal model calls, over seeds.

    python benchmarks/distill_fid.py --out benchmarks/results/distill_fid     # the committed table
    python benchmarks/distill_fid.py --students runs/fashion-mnist-distilled/student-4 --n 100 --seeds 0 --out /tmp/d

A cell is (method, NFE, seed); every method makes exactly NFE model calls (counted, and recorded):

    student/ddim           a student of ``ddim-lesson distill`` (each of ``--students``), DDIM on its own grid: NFE is
                           the k of its card's ``"sampling": {"steps": k, "spacing": ...}``
    teacher/SOLVER         the teacher (``--model``) with a training-free solver at the same k calls, trailing grid
                           (ddim, dpmpp_2m, dpmpp_3m, dpmpp_3m_exact: the solver table's rungs)
    teacher/ddim at ``--reference-steps`` (64 by default): the teacher the first round copied, the student's ceiling

Seed k starts every cell from the same x_T (Table 1's batch seeds), so the student and each solver are compared
seed by seed. A student cell records its weights' sha256; resuming with another student of the same k is refused.
Results are saved after every cell; the same command resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..core.checks import check_choice, check_int
from ..core.fields import check_fields, sample_batch_field, seeds_field
from ..core.schedules import NoiseSchedule
from ..store.instruments import progress_bar
from ..store.pretrained import load_any
from .flow_twin_fid import fid_by_method, fmt_fids, fmt_paired, paired
from .generate import n_batches
from .metrics import FeatureStats
from .records import header, machine_line, md_safe, model_sha256, open_results, save_results, with_suffix
from .solver_fid import sample_solver_cell
from .table1 import DEVICE_HELP, MODEL_HELP, OUT_HELP, fid_setup

TEACHER_SOLVERS = ("ddim", "dpmpp_2m", "dpmpp_3m", "dpmpp_3m_exact")


@dataclass
class DistillFIDConfig:
    """Which cells to measure: each student at its own k, the teacher's solvers at each k, the teacher's reference."""

    model: str = field(default="fashion-mnist", metadata={"help": "the teacher: " + MODEL_HELP})
    students: tuple[str, ...] = field(default=("fashion-mnist-distilled",),
                                      metadata={"help": "distilled students (names or paths), one per k"})
    solvers: tuple[str, ...] = field(default=TEACHER_SOLVERS, metadata={"choices": TEACHER_SOLVERS})
    reference_steps: int = field(default=64,
                                 metadata={"help": "the teacher's DDIM steps of the reference row (0: none)"})
    seeds: tuple[int, ...] = seeds_field((0, 1, 2))  # seed k starts every cell from one x_T
    n: int = field(default=500, metadata={"help": "samples per FID"})
    batch_size: int = sample_batch_field(250)
    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})
    out: str = field(default="runs/eval/distill_fid", metadata={"help": OUT_HELP})

    def __post_init__(self) -> None:
        for s in self.solvers:
            check_choice("solver", s, TEACHER_SOLVERS)
        check_int("reference_steps", self.reference_steps, 0, 1000)
        check_fields(self)  # seeds, batch_size
        check_int("n", self.n, 2, None)  # FID needs a covariance
        if not (self.students and self.seeds):
            raise ValueError("students and seeds must each hold at least one value")


def cell_key(method: str, nfe: int, seed: int) -> str:
    return f"{method} nfe={nfe} seed={seed}"


def student_sampling(meta: dict[str, Any], spec: str) -> tuple[int, str]:
    """(k, spacing) from a student's card; ValueError for a model that is not a distilled student."""
    sampling = meta.get("sampling") or {}
    if meta.get("prediction") != "v" or "steps" not in sampling:
        raise ValueError(f"--students {spec!r} is not a student of ddim-lesson distill (its card has no "
                         "\"prediction\": \"v\" with \"sampling\": {\"steps\": k}); allowed: a distill round's export")
    return int(sampling["steps"]), str(sampling.get("spacing", "trailing"))


def distill_cost(meta: dict[str, Any]) -> dict[str, Any]:
    """What a student cost to train, from its card: training steps, samples seen, model calls, CPU seconds.

    Each training example costs 2 teacher calls (no gradient) and 1 student call with its backward pass (about 2
    more calls' work), so about 5 forward-call equivalents; the count says which is which."""
    dc = meta.get("distill_config") or {}
    steps = int(meta.get("steps") or 0)
    examples = steps * int(dc.get("batch_size") or 0)
    return {"train_steps": steps, "rounds": len(meta.get("rounds") or []), "examples": examples,
            "teacher_calls": 2 * examples, "student_calls": examples, "wall_time_s": meta.get("wall_time_s"),
            "command": meta.get("command"), "threads": meta.get("threads")}


def run_distill_fid(cfg: DistillFIDConfig, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
                    meta: dict[str, Any] | None = None, students: list[tuple[nn.Module, dict[str, Any]]] | None = None,
                    log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Fill the cells seed by seed, saving after each; returns the results dict (resumable). Pass the models to
    evaluate them in memory (``cfg.model`` and ``cfg.students`` are then labels)."""
    model, schedule, meta, clf, clf_sha, ref = fid_setup(cfg, model, schedule, meta)  # type: ignore[arg-type]
    if students is None:
        students = []
        for spec in cfg.students:
            student, s_schedule, smeta, _ = load_any(spec, cfg.device)
            if s_schedule.to_dict() != schedule.to_dict():
                raise ValueError(f"--students {spec!r} has another noise schedule than the teacher {cfg.model!r}")
            students.append((student, smeta))
    if len(students) != len(cfg.students):
        raise ValueError(f"{len(students)} student models for {len(cfg.students)} --students labels")
    by_k: dict[int, tuple[nn.Module, str, dict[str, Any]]] = {}
    for spec, (student, smeta) in zip(cfg.students, students):
        k, spacing = student_sampling(smeta, spec)
        if k in by_k:
            raise ValueError(f"two students take k = {k} steps ({by_k[k][2]['spec']!r} and {spec!r}); "
                             "allowed: one per k")
        if spacing != "trailing":
            raise ValueError(f"--students {spec!r} samples on the {spacing!r} grid; allowed: 'trailing' (the grid "
                             "distill nests and the teacher's solvers use)")
        card = {"spec": spec, "sha256": model_sha256(student), **distill_cost(smeta)}
        by_k[k] = (student.to(cfg.device).eval(), spacing, card)
    out = Path(cfg.out)
    key = {"classifier_sha256": clf_sha, "n": cfg.n, "batch_size": cfg.batch_size}
    res = open_results(with_suffix(out, ".json"), header("distill-fid", cfg, model, schedule, meta, key))
    for k, (_, _, card) in by_k.items():
        old = res.get("students", {}).get(str(k))
        if old is not None and old["sha256"] != card["sha256"] and any(
                c["method"] == "student/ddim" and c["nfe"] == k for c in res["cells"].values()):
            raise ValueError(f"{out}.json holds k = {k} cells of another student (sha256 {old['sha256'][:16]}…, not "
                             f"{card['sha256'][:16]}…); pass another --out or delete it")
        res.setdefault("students", {})[str(k)] = card
    res["reference"] = {"split": "test", "n": ref.n}
    plan = [(f"teacher/{so}", k) for k in sorted(by_k) for so in cfg.solvers] + [("student/ddim", k) for k in by_k]
    if cfg.reference_steps:
        plan.append(("teacher/ddim", cfg.reference_steps))
    todo = [(seed, m, k) for seed in cfg.seeds for m, k in dict.fromkeys(plan)
            if cell_key(m, k, seed) not in res["cells"]]
    bar = progress_bar(sum(k * n_batches(cfg.n, cfg.batch_size) for _, _, k in todo), "distill-fid", progress)
    counted = [0]

    def tick(c: int) -> None:
        counted[0] += c
        bar.update(c)

    for seed, method, k in todo:
        key_k = cell_key(method, k, seed)
        bar.set_postfix(cell=key_k)
        counted[0] = 0
        net = by_k[k][0] if method == "student/ddim" else model
        solver = method.split("/")[1]
        feats, secs = sample_solver_cell(net, schedule, solver, "trailing", k, cfg.n, cfg.batch_size, seed, False,
                                         cfg.device, clf, on_call=tick)
        calls = counted[0] / n_batches(cfg.n, cfg.batch_size)
        if calls != k:
            raise RuntimeError(f"internal: {key_k} made {calls:g} model calls per batch, not {k}")
        value = FeatureStats.of(feats).distance(ref)
        res["cells"][key_k] = {"method": method, "nfe": k, "calls": int(calls), "seed": seed, "fid": round(value, 4),
                               "seconds_per_image": round(secs / cfg.n, 6)}
        if method == "student/ddim":
            res["cells"][key_k]["student_sha256"] = by_k[k][2]["sha256"]
        save_results(out, res, distill_fid_markdown)
        log(f"{key_k}: FID {value:.3f} (n={cfg.n})")
    bar.close()
    save_results(out, res, distill_fid_markdown)
    return res


def distill_fid_markdown(res: dict[str, Any]) -> str:
    """FID mean ± sd per method and NFE; the student minus each solver seed by seed; what the students cost."""
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
    tab = fid_by_method(res)
    nfes = sorted({nfe for _, nfe in tab})
    methods = ["student/ddim"] + [f"teacher/{so}" for so in TEACHER_SOLVERS]
    lines = ["| method | " + " | ".join(f"NFE {v}" for v in nfes) + " |", "|---|" + "---|" * len(nfes)]
    lines += [f"| {m} | " + " | ".join(fmt_fids(tab.get((m, v), {})) for v in nfes) + " |"
              for m in methods if any((m, v) in tab for v in nfes)]
    ks = sorted(int(k) for k in res.get("students", {}))
    diff = ["| student − teacher with | " + " | ".join(f"NFE {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for so in TEACHER_SOLVERS:
        ds = [paired(tab, "student/ddim", f"teacher/{so}", k) for k in ks]
        if any(ds):
            diff.append(f"| {so} | " + " | ".join(fmt_paired(d) for d in ds) + " |")
    cost = ["| k | student | sha256 | rounds | training steps | examples | teacher calls | wall time (s) | command |",
            "|---|---|---|---|---|---|---|---|---|"]
    cost += [f"| {k} | `{c['spec']}` | `{c['sha256'][:16]}…` | {c['rounds']} | {c['train_steps']} | {c['examples']} | "
             f"{c['teacher_calls']} | {c['wall_time_s']} | `{c['command']}` |"
             for k, c in sorted(res.get("students", {}).items(), key=lambda kv: int(kv[0]))]
    seeds = sorted({c["seed"] for c in res["cells"].values()})
    cfg = res["config"]
    return "\n".join([
        "# Distilled students against the teacher's solvers: FID at equal model calls (lower is better)",
        "",
        f"Classifier FID, mean ± sample sd over seeds {', '.join(map(str, seeds))}, n = {cfg['n']} samples per FID "
        f"against the {res['reference']['n']} test images. Teacher `{res['model']['spec']}` (weights sha256 "
        f"`{res['model']['sha256'][:16]}…`). NFE is the number of model calls per sample; every cell is on the "
        "trailing grid, no clipping; seed k starts every cell from the same x_T.",
        "",
        *lines,
        "",
        "The student minus the teacher with each solver at the student's k calls: the mean over seeds, then each "
        "seed's (same x_T). Negative: the student is better.",
        "",
        *diff,
        "",
        "What each student cost (from its card): every training example is 2 teacher calls without gradient and 1 "
        "student call with its backward pass.",
        "",
        *cost,
        "",
        machine_line(res),
        "",
    ])
