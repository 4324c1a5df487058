"""The flow-matching twin against the shipped ε-model: classifier FID at equal model calls, over seeds.

    python benchmarks/flow_twin_fid.py --twin fashion-mnist-fm --out benchmarks/results/flow_twin_fid
    python benchmarks/flow_twin_fid.py --twin runs/fashion-mnist-fm/model --n 100 --seeds 0 --nfes 10 --out /tmp/ftf

A cell is (method, NFE, seed); every method makes exactly NFE model calls (counted, and recorded):

    eps-ddim/trailing      the ε-model (``--model``), DDIM (η = 0, no clipping) on its trailing grid
    eps-dpmpp_2m/trailing  the ε-model, DPM-Solver++ 2M, trailing (these two are the solver table's cells)
    eps-ddim/uniform-s     the ε-model on the twin's grid: DDIM on the timesteps whose s is nearest 1, 1-1/N, .., 1/N
    fm-euler/uniform-s     the twin (``--twin``), Euler on dx/ds = v over linspace(1, 0, N+1): flow_sample(steps=N)
    fm-euler/trailing      the twin on the ε-model's grid: Euler over flow_grid(schedule, N, "trailing")

so the objective and the time grid are measured apart (same grid, two objectives; same model, two grids).
No 2nd-order flow solver is in the package, so there is no Heun-in-s row. Seed k starts every cell from the
same x_T (Table 1's batch seeds): the ε-model from x_T at t = T-1; the twin from x_T at s = 1, or, on a grid
that starts at s(T-1), from x_T/(√ᾱ + √(1-ᾱ)) there, as the identity maps DDIM's start. So differences are
read seed by seed. Results are saved after every cell; the same command resumes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice, check_int
from ..core.fields import check_fields, nfes_field, sample_batch_field, seeds_field
from ..core.flow import eps_to_velocity, flow_grid, flow_progressive, s_of_abar
from ..core.schedules import NoiseSchedule
from ..store.instruments import Stopwatch, progress_bar
from ..store.pretrained import load_any
from .fid_spread import spread_summary
from .generate import batch_seed, channels_last, image_shape, n_batches, seeded_latents
from .metrics import FeatureStats, features
from .records import header, machine_line, md_safe, model_sha256, open_results, save_results, with_suffix
from .solver_fid import sample_solver_cell
from .table1 import DEVICE_HELP, MODEL_HELP, OUT_HELP, fid_setup

METHODS = ("eps-ddim/trailing", "eps-dpmpp_2m/trailing", "eps-ddim/uniform-s", "fm-euler/uniform-s",
           "fm-euler/trailing")
# (a, b, what a - b isolates): read seed by seed
PAIRS = (("fm-euler/uniform-s", "eps-ddim/trailing", "each on its own grid: objective and grid together"),
         ("fm-euler/uniform-s", "eps-dpmpp_2m/trailing", "the twin's Euler against the ε-model's 2nd-order solver"),
         ("fm-euler/trailing", "eps-ddim/trailing", "the objective alone, on the ε-model's grid"),
         ("fm-euler/uniform-s", "eps-ddim/uniform-s", "the objective alone, on the twin's grid"),
         ("eps-ddim/uniform-s", "eps-ddim/trailing", "the grid alone, for the ε-model"),
         ("fm-euler/uniform-s", "fm-euler/trailing", "the grid alone, for the twin"))


@dataclass
class FlowTwinFIDConfig:
    """Which cells to measure: methods (see the module docstring) x NFE x seeds, n samples each."""

    model: str = field(default="fashion-mnist", metadata={"help": "the ε-model: " + MODEL_HELP})
    twin: str = field(default="fashion-mnist-fm", metadata={"help": "the flow-matching twin: " + MODEL_HELP})
    methods: tuple[str, ...] = field(default=METHODS, metadata={"choices": METHODS})
    nfes: tuple[int, ...] = nfes_field((5, 10, 20))
    seeds: tuple[int, ...] = seeds_field((0, 1, 2))  # seed k starts every cell from one x_T
    n: int = field(default=500, metadata={"help": "samples per FID"})
    batch_size: int = sample_batch_field(250)
    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})
    out: str = field(default="runs/eval/flow_twin_fid", metadata={"help": OUT_HELP})

    def __post_init__(self) -> None:
        for m in self.methods:
            check_choice("method", m, METHODS)
        self.nfes = tuple(check_int("nfe", v, 1, 1000) for v in self.nfes)
        check_fields(self)  # seeds, batch_size
        check_int("n", self.n, 2, None)  # FID needs a covariance
        if not (self.methods and self.nfes and self.seeds):
            raise ValueError("methods, nfes and seeds must each hold at least one value")


def cell_key(method: str, nfe: int, seed: int) -> str:
    return f"{method} nfe={nfe} seed={seed}"


def uniform_s_timesteps(schedule: NoiseSchedule, steps: int) -> torch.Tensor:
    """The timesteps whose s is nearest to s_i = 1 - i/steps, i = 0..steps-1: (steps,) int64, descending.

    The twin's grid on the ε-model's clock (s = 1 itself is not on it: its nearest is t = T-1). ValueError when
    two s_i share a timestep (steps too many for the clock).
    """
    check_int("steps", steps, 1, schedule.T)
    table = s_of_abar(schedule.alphas_cumprod)  # (T,) ascending in t
    want = 1 - torch.arange(steps, dtype=torch.float64) / steps  # (steps,) 1, 1 - 1/N, ..., 1/N
    ts = (table[None, :] - want[:, None]).abs().argmin(1)  # (steps,) nearest timestep of each s_i
    if not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(f"steps={steps}: s values 1/{steps} apart share timesteps on this clock (its s runs from "
                         f"{float(table[0]):.4f} to {float(table[-1]):.4f}); allowed: fewer steps, whose s values "
                         "land on distinct timesteps")
    return ts


def method_grid(method: str, schedule: NoiseSchedule, nfe: int) -> tuple[torch.Tensor, float]:
    """(s grid of nfe+1 points, the factor x_T is multiplied by to start on it) of a flow-Euler method."""
    if method == "fm-euler/uniform-s":
        return torch.linspace(1, 0, nfe + 1, dtype=torch.float64), 1.0
    if method == "fm-euler/trailing":
        grid = flow_grid(schedule, nfe, "trailing")
    elif method == "eps-ddim/uniform-s":
        ts = uniform_s_timesteps(schedule, nfe)
        grid = torch.cat([s_of_abar(schedule.alphas_cumprod[ts]), torch.zeros(1, dtype=torch.float64)])
    else:
        raise ValueError(f"method {method!r} is not a flow-Euler method; allowed: fm-euler/uniform-s, "
                         "fm-euler/trailing, eps-ddim/uniform-s")
    s0 = float(grid[0])  # x_T read as x_t at the grid's first timestep, in flow coordinates: x_t·(1 - s)/√ᾱ
    abar0 = ((1 - s0) ** 2) / ((1 - s0) ** 2 + s0 ** 2)  # s = √(1-ᾱ)/(√ᾱ + √(1-ᾱ)) inverted
    return grid, 1.0 / (abar0 ** 0.5 + (1 - abar0) ** 0.5)


@torch.no_grad()
def sample_flow_cell(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], model: nn.Module,
                     s_grid: torch.Tensor, start_scale: float, n: int, batch_size: int, seed: int,
                     device: str = "cpu", classifier: nn.Module | None = None,
                     on_call: Callable[[int], object] | None = None) -> tuple[torch.Tensor, float]:
    """n samples by Euler over ``s_grid`` -> (features (n, D), sampling seconds); ``on_call(1)`` after every
    velocity call. Batch b starts from start_scale·x_T, x_T seeded as the solver table's batch b."""
    shape = image_shape(model, "the flow twin table")

    def counted(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out = velocity(x, s)
        if on_call is not None:
            on_call(1)
        return out

    feats, seconds = [], 0.0
    with channels_last(model):
        for b, start in enumerate(range(0, n, batch_size)):
            x1 = start_scale * seeded_latents(batch_seed(seed, b), min(batch_size, n - start), shape).to(device)
            with Stopwatch() as sw:
                for step in flow_progressive(counted, x1, s_grid=s_grid):
                    x0 = step.x
            seconds += sw.seconds
            feats.append(features(x0.cpu(), classifier))
    return torch.cat(feats), seconds


def objective_of(model: nn.Module, meta: dict[str, Any]) -> str:
    """"flow" or "eps": the training objective a checkpoint records, else what its time embedding says."""
    recorded = (meta.get("train_config") or {}).get("objective")
    if recorded:
        return str(recorded)
    return "eps" if float(getattr(getattr(model, "config", None), "time_scale", 1.0)) == 1.0 else "flow"


def run_flow_twin_fid(cfg: FlowTwinFIDConfig, model: nn.Module | None = None, schedule: NoiseSchedule | None = None,
                      meta: dict[str, Any] | None = None, twin: nn.Module | None = None,
                      twin_meta: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                      progress: bool = True) -> dict[str, Any]:
    """Fill the cells seed by seed, saving after each; returns the results dict (resumable). Pass the models to
    evaluate them in memory (``cfg.model`` and ``cfg.twin`` are then only labels)."""
    model, schedule, meta, clf, clf_sha, ref = fid_setup(cfg, model, schedule, meta)  # type: ignore[arg-type]
    if twin is None:
        twin, _, twin_meta, _ = load_any(cfg.twin, cfg.device)
    twin, twin_meta = twin.to(cfg.device).eval(), twin_meta or {}
    for name, m, mt, want in (("--model", model, meta, "eps"), ("--twin", twin, twin_meta, "flow")):
        if objective_of(m, mt) != want:
            raise ValueError(f"{name} must be a model trained with objective {want!r}, got {objective_of(m, mt)!r}")
    out, twin_sha = Path(cfg.out), model_sha256(twin)
    key = {"classifier_sha256": clf_sha, "n": cfg.n, "batch_size": cfg.batch_size, "twin_sha256": twin_sha}
    res = open_results(with_suffix(out, ".json"), header("flow-twin-fid", cfg, model, schedule, meta, key))
    res["twin"] = {"spec": cfg.twin, "sha256": twin_sha, "train_steps": twin_meta.get("steps"),
                   "command": twin_meta.get("command"), "wall_time_s": twin_meta.get("wall_time_s")}
    res["reference"] = {"split": "test", "n": ref.n}
    todo = [(seed, nfe, m) for seed in cfg.seeds for nfe in cfg.nfes for m in cfg.methods
            if cell_key(m, nfe, seed) not in res["cells"]]
    bar = progress_bar(sum(nfe * n_batches(cfg.n, cfg.batch_size) for _, nfe, _ in todo), "flow-twin-fid", progress)
    counted = [0]  # model calls of the cell being sampled

    def tick(c: int) -> None:
        counted[0] += c
        bar.update(c)

    for seed, nfe, method in todo:
        k = cell_key(method, nfe, seed)
        bar.set_postfix(cell=k)
        counted[0] = 0
        if method in ("eps-ddim/trailing", "eps-dpmpp_2m/trailing"):  # the solver table's own cells
            feats, secs = sample_solver_cell(model, schedule, method[4:].split("/")[0], "trailing", nfe, cfg.n,
                                             cfg.batch_size, seed, False, cfg.device, clf, on_call=tick)
        else:
            grid, scale = method_grid(method, schedule, nfe)
            net = twin if method.startswith("fm-") else model
            velocity = twin if method.startswith("fm-") else eps_to_velocity(model, schedule)
            feats, secs = sample_flow_cell(velocity, net, grid, scale, cfg.n, cfg.batch_size, seed, cfg.device, clf,
                                           on_call=tick)
        calls = counted[0] / n_batches(cfg.n, cfg.batch_size)  # per batch: each batch is one sampler run
        if calls != nfe:
            raise RuntimeError(f"internal: {k} made {calls:g} model calls per batch, not {nfe}")
        value = FeatureStats.of(feats).distance(ref)
        res["cells"][k] = {"method": method, "nfe": nfe, "calls": int(calls), "seed": seed, "fid": round(value, 4),
                           "seconds_per_image": round(secs / cfg.n, 6)}
        save_results(out, res, flow_twin_markdown)
        log(f"{k}: FID {value:.3f} (n={cfg.n})")
    bar.close()
    save_results(out, res, flow_twin_markdown)
    return res


def fid_by_method(res: dict[str, Any]) -> dict[tuple[str, int], dict[int, float]]:
    """{(method, nfe): {seed: fid}} from a results dict."""
    out: dict[tuple[str, int], dict[int, float]] = {}
    for c in res["cells"].values():
        out.setdefault((c["method"], c["nfe"]), {})[c["seed"]] = c["fid"]
    return out


def paired(tab: dict[tuple[str, int], dict[int, float]], a: str, b: str, nfe: int) -> list[float]:
    """FID(a) - FID(b) for each seed measured in both (same x_T), in seed order."""
    fa, fb = tab.get((a, nfe), {}), tab.get((b, nfe), {})
    return [fa[s] - fb[s] for s in sorted(fa) if s in fb]


def paired_verdict(tab: dict[tuple[str, int], dict[int, float]], a: str, b: str,
                   nfe: int) -> tuple[float, list[float], bool]:
    """(mean of :func:`paired`'s FID(a) - FID(b), those per-seed differences, clear: one sign in every seed).

    No seed measured for both a and b at ``nfe``: ValueError naming a, b, nfe and the pairs the table holds.
    """
    d = paired(tab, a, b, nfe)
    if not d:
        raise ValueError(f"no seed has both {a!r} and {b!r} at NFE {nfe}; the table holds {sorted(tab)}")
    return statistics.fmean(d), d, all(x < 0 for x in d) or all(x > 0 for x in d)


def fmt_fids(fids: dict[int, float]) -> str:
    """"mean ± sd" of per-seed FIDs (one value alone, "–" for none)."""
    if len(fids) < 2:
        return "–" if not fids else f"{next(iter(fids.values())):.2f}"
    st = spread_summary(list(fids.values()))
    return f"{st['mean']:.2f} ± {st['sd']:.2f}"


def fmt_paired(d: list[float]) -> str:
    """Paired differences as "mean (each seed's)", "–" for none."""
    if not d:
        return "–"
    per_seed = ", ".join(f"{x:+.2f}" for x in d)
    return f"{statistics.fmean(d):+.2f} ({per_seed})"


def flow_twin_markdown(res: dict[str, Any]) -> str:
    """FID mean ± sd per method and NFE; then the paired differences, seed by seed."""
    res = md_safe(res)  # every string from the file escaped before it meets Markdown
    tab, cfg = fid_by_method(res), res["config"]
    nfes = sorted({nfe for _, nfe in tab})
    lines = ["| method | " + " | ".join(f"NFE {v}" for v in nfes) + " |", "|---|" + "---|" * len(nfes)]
    lines += [f"| {m} | " + " | ".join(fmt_fids(tab.get((m, v), {})) for v in nfes) + " |"
              for m in cfg["methods"] if any((m, v) in tab for v in nfes)]
    diff = ["| a − b | what it isolates | " + " | ".join(f"NFE {v}" for v in nfes) + " |",
            "|---|---|" + "---|" * len(nfes)]
    diff += [f"| {a} − {b} | {why} | " + " | ".join(fmt_paired(paired(tab, a, b, v)) for v in nfes) + " |"
             for a, b, why in md_safe(PAIRS) if any(paired(tab, a, b, v) for v in nfes)]
    seeds = sorted({c["seed"] for c in res["cells"].values()})
    tw = res["twin"]
    return "\n".join([
        "# The flow-matching twin against the ε-model: FID at equal model calls (lower is better)",
        "",
        f"Classifier FID, mean ± sample sd over seeds {', '.join(map(str, seeds))}, n = {cfg['n']} samples per FID "
        f"against the {res['reference']['n']} test images. ε-model `{res['model']['spec']}` (weights sha256 "
        f"`{res['model']['sha256'][:16]}…`); twin `{tw['spec']}` (weights sha256 `{tw['sha256'][:16]}…`, "
        f"{tw['train_steps']} training steps, `{tw['command']}`). NFE is the number of model calls per sample; "
        "no clipping. Seed k starts every cell from the same x_T. The package has no 2nd-order flow solver, so the "
        "twin is sampled by Euler only.",
        "",
        *lines,
        "",
        "Paired differences FID(a) − FID(b): the mean over seeds, then each seed's (same x_T):",
        "",
        *diff,
        "",
        machine_line(res),
        "",
    ])
