"""Guidance and editing on the shipped class-conditional model: the tables of notebooks 07 and 08.

    python benchmarks/guidance.py --out benchmarks/results/guidance # every part, the committed settings and file
    python benchmarks/guidance.py --parts tradeoff --seeds 1        # one part, one more seed (resumes)
    python benchmarks/guidance.py --n-per-class 5 --out /tmp/g      # a quick look

Parts (results go to OUT.json / OUT.md after every cell; run again to resume, cells already there are kept):
- tradeoff:  for each guidance scale, n_per_class DDIM samples per class (S steps, η = 0) from the same
             seeded latents: on-class accuracy, FID against the test set, within-class diversity; one row per
             seed, plus real held-out images as the yardstick;
- sdedit:    blocky (4×4-block) test images edited by SDEdit (towards their label) at each strength: distance to
             the input, FID and accuracy;
             beside it, the same inputs inverted without a label and decoded with their label at a scale;
- edit:      "this shirt as a dress": invert test images with their label, decode with another;
- inversion: reconstruction error against the guidance scale (plain and fixed-point inversion), and against
             the number of model calls (plain S = 10 … 200, fixed-point S = 10 with k = 1 … 6).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ddim_lesson.core.guidance import cfg
from ddim_lesson.core.inversion import ddim_invert
from ddim_lesson.course.env import pick_threads
from ddim_lesson.evaluate.guidance_eval import (
    EDIT_PAIRS,
    blocky,
    class_samples,
    edit_by_inversion,
    inversion_edit_point,
    quality,
    roundtrip_mse,
    sdedit_point,
)
from ddim_lesson.evaluate.metrics import HOLDOUT, reference_stats
from ddim_lesson.evaluate.records import git_commit, model_sha256
from ddim_lesson.store.ckpt_files import atomic_write as _atomic_write
from ddim_lesson.store.data import FASHION_CLASSES, load_images
from ddim_lesson.store.device import machine
from ddim_lesson.store.pretrained import load_any

PARTS = ("tradeoff", "sdedit", "edit", "inversion")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fashion-mnist-cond")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {','.join(PARTS)}")
    p.add_argument("--scales", default="0,1,2,3,5,7")
    p.add_argument("--seeds", default="0,1,2", help="tradeoff: one row per seed")
    p.add_argument("--n-per-class", type=int, default=50)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps for sampling, inversion and full-strength SDEdit")
    p.add_argument("--strengths", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    p.add_argument("--edit-scales", default="1,3")
    p.add_argument("--invert-scales", default="0,1,3", help="sdedit: decode the inverted inputs at these scales")
    p.add_argument("--n-edit", type=int, default=50, help="edit: source images per class pair")
    p.add_argument("--n-invert", type=int, default=20, help="inversion: test images (2 per class)")
    p.add_argument("--out", default="runs/eval/guidance",
                   help="results path without suffix (the committed one, benchmarks/results/guidance, only if named)")
    a = p.parse_args(argv)
    a.parts = [s for s in a.parts.split(",") if s]
    bad = [s for s in a.parts if s not in PARTS]
    if bad:
        p.error(f"unknown part {bad[0]!r}; allowed: {', '.join(PARTS)}")
    a.scales, a.strengths, a.edit_scales, a.invert_scales = (
        tuple(float(v) for v in s.split(",")) for s in (a.scales, a.strengths, a.edit_scales, a.invert_scales))
    a.seeds = tuple(int(v) for v in a.seeds.split(","))
    return a


def per_class(images: torch.Tensor, labels: torch.Tensor, n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images of each class after skipping ``offset`` of it; (10n, ...), (10n,)."""
    idx = torch.cat([torch.nonzero(labels == c).flatten()[offset : offset + n] for c in range(10)])
    return images[idx], labels[idx]


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    threads = pick_threads()
    model, schedule, meta, _ = load_any(a.model)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    sha = model_sha256(model)
    if res and res.get("model", {}).get("sha256") != sha:
        sys.exit(f"{out}.json holds results of another model; pass another --out or delete it")
    res.update({"model": {"spec": a.model, "sha256": sha, "train_steps": meta.get("steps"),
                          "command": meta.get("command")},
                "machine": machine(), "git_commit": git_commit(), "threads": threads.reason})
    res.setdefault("settings", {})
    test_x, test_y = load_images("fashion-mnist", train=False, with_labels=True)
    ref = reference_stats("test")

    def save() -> None:
        _atomic_write(out.with_suffix(".json"), json.dumps(res, indent=1).encode())
        _atomic_write(out.with_suffix(".md"), markdown(res).encode())

    if "tradeoff" in a.parts:
        res["settings"]["tradeoff"] = {"n_per_class": a.n_per_class, "steps": a.steps, "eta": 0.0}
        rows = res.setdefault("tradeoff", {})
        if "real" not in rows:  # the yardstick: held-out training images, n per class, against the test set
            tx, ty = load_images("fashion-mnist", train=True, with_labels=True)
            rx, ry = per_class(tx[-HOLDOUT:], ty[-HOLDOUT:], a.n_per_class)
            rows["real"] = quality(rx, ry, ref)
        todo = [(s, w) for s in a.seeds for w in a.scales if f"seed={s} scale={w}" not in rows]
        for s, w in tqdm(todo, desc="tradeoff"):
            t0 = time.perf_counter()
            x, y = class_samples(model, schedule, w, a.n_per_class, a.steps, seed=s)
            rows[f"seed={s} scale={w}"] = {"seed": s, "scale": w, **quality(x, y, ref),
                                           "seconds": round(time.perf_counter() - t0, 1)}
            save()
    if "sdedit" in a.parts:
        res["settings"]["sdedit"] = {"n_per_class": a.n_per_class, "steps_full": a.steps, "corruption": "4x4 blocks",
                                     "model_label": "the true label, scale 1 (conditional)"}
        src, lab = per_class(test_x, test_y, a.n_per_class)
        x_in = blocky(src)
        rows = res.setdefault("sdedit", {})
        rows.setdefault("input", {"rmse_to_input": 0.0, **quality(x_in, lab, ref)})
        todo = [s for s in a.strengths if f"strength={s}" not in rows]
        for s in tqdm(todo, desc="sdedit"):
            rows[f"strength={s}"] = sdedit_point(model, schedule, x_in, lab, s, max(1, round(a.steps * s)), 0, ref)
            save()
        todo = [w for w in a.invert_scales if f"invert scale={w}" not in rows]
        x_T = ddim_invert(model, schedule, x_in, steps=a.steps) if todo else None  # no label: y = None
        for w in tqdm(todo, desc="inversion edit"):
            rows[f"invert scale={w}"] = inversion_edit_point(model, schedule, x_T, x_in, lab, w, a.steps, ref)
            save()
    if "edit" in a.parts:
        res["settings"]["edit"] = {"n": a.n_edit, "steps": a.steps, "invert_scale": 1.0}
        rows = res.setdefault("edit", {})
        todo = [(p, w) for p in EDIT_PAIRS for w in a.edit_scales if f"{p[0]}->{p[1]} scale={w}" not in rows]
        for (ys, yt), w in tqdm(todo, desc="edit"):
            src = test_x[torch.nonzero(test_y == ys).flatten()[: a.n_edit]]
            rows[f"{ys}->{yt} scale={w}"] = edit_by_inversion(model, schedule, src, ys, yt, w, a.steps, seed=ys)
            save()
    if "inversion" in a.parts:
        res["settings"]["inversion"] = {"n": a.n_invert, "decode": "eta = 0, clip_x0=False", "error": "MSE"}
        x0, y0 = per_class(test_x, test_y, a.n_invert // 10)
        rows = res.setdefault("inversion", {})
        cells = [("scale", w, a.steps, k) for w in a.scales for k in (0, 3)]
        cells += [("calls", w, S, 0) for w in (1.0, 3.0) for S in (10, 20, 50, 100, 200)]
        cells += [("calls", w, 10, k) for w in (1.0, 3.0) for k in range(1, 7)]
        todo = [c for c in cells if f"{c[0]} scale={c[1]} S={c[2]} k={c[3]}" not in rows]
        for kind, w, S, k in tqdm(todo, desc="inversion"):
            rows[f"{kind} scale={w} S={S} k={k}"] = {"scale": w, "steps": S, "k": k, "calls": S * (1 + k),
                                                     "mse": roundtrip_mse(cfg(model, y0, w), schedule, x0, S, k)}
            save()
    save()
    print(markdown(res))


def markdown(res: dict) -> str:
    lines = [f"# Guidance and editing on `{res['model']['spec']}`", "",
             f"Model sha256 {res['model']['sha256'][:12]}, trained {res['model']['train_steps']} steps. "
             f"Machine: {res['machine']['platform']}, {res['machine']['torch_threads']} torch thread(s), "
             f"load {res['machine'].get('load_avg_1min', '?')}; commit {res['git_commit']}.", ""]
    if "tradeoff" in res:
        st = res["settings"]["tradeoff"]
        rows = [r for k, r in res["tradeoff"].items() if k != "real"]
        lines += ["## Guidance trade-off", "",
                  f"{st['n_per_class']} samples per class (N = {10 * st['n_per_class']}), DDIM S = {st['steps']}, "
                  "η = 0, the same latents at every scale. Accuracy: the course classifier agrees with the asked "
                  "class. FID against the test set at this N. Diversity: mean pairwise feature distance within a "
                  "class. Mean ± sd over seeds.", "",
                  "| scale | seeds | on-class accuracy | FID | diversity |", "|---|---|---|---|---|"]
        for w in sorted({r["scale"] for r in rows}):
            sel = [r for r in rows if r["scale"] == w]

            def ms(key: str, d: int, sel: list = sel) -> str:
                v = torch.tensor([r[key] for r in sel], dtype=torch.float64)
                return f"{v.mean():.{d}f} ± {v.std():.{d}f}" if len(sel) > 1 else f"{float(v[0]):.{d}f}"
            lines.append(f"| {w:g} | {len(sel)} | {ms('accuracy', 3)} | {ms('fid', 2)} | {ms('diversity', 2)} |")
        real = res["tradeoff"].get("real")
        if real:
            lines.append(f"| real held-out images | - | {real['accuracy']:.3f} | {real['fid']:.2f} | "
                         f"{real['diversity']:.2f} |")
        lines.append("")
    if "sdedit" in res:
        lines += ["## SDEdit against editing through inversion", "",
                  "Inputs: test images reduced to 4×4-pixel blocks. Distance: RMSE to the blocky input on the [-1, 1] "
                  "scale (faithfulness). FID against the test set and the classifier's accuracy on the true class "
                  "(realism). SDEdit uses the conditional model with the true label (scale 1); 'invert' rows invert "
                  "the input without a label and decode it with its true label at that guidance scale.", "",
                  "| edit | model calls | RMSE to input | FID | accuracy |", "|---|---|---|---|---|"]
        for k, r in res["sdedit"].items():
            lines.append(f"| {k} | {r.get('steps', 0) * (1 if 'strength' in k else 2)} | {r['rmse_to_input']:.3f} | "
                         f"{r['fid']:.2f} | {r['accuracy']:.3f} |")
        lines.append("")
    if "edit" in res:
        lines += ["## Editing by inversion", "",
                  "Invert test images with their own label (scale 1), decode with the target label at the scale. "
                  "'fresh': samples of the target class from new noise, for comparison.", "",
                  "| edit | scale | n | classified as target: edit | fresh | RMSE to source: edit | fresh |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["edit"].values():
            lines.append(f"| {FASHION_CLASSES[r['src']]} → {FASHION_CLASSES[r['tgt']]} | {r['scale']:g} | {r['n']} | "
                         f"{r['edit_accuracy']:.2f} | {r['fresh_accuracy']:.2f} | {r['edit_rmse_to_source']:.3f} | "
                         f"{r['fresh_rmse_to_source']:.3f} |")
        lines.append("")
    if "inversion" in res:
        inv = res["inversion"]
        lines += ["## Inversion under guidance", "",
                  f"{res['settings']['inversion']['n']} test images with their labels; invert and decode with the same "
                  "guided model (η = 0, clip_x0=False); MSE per pixel.", "",
                  "| scale | plain | fixed-point k = 3 |", "|---|---|---|"]
        for w in sorted({r["scale"] for k, r in inv.items() if k.startswith("scale")}):
            cell = {r["k"]: r for k, r in inv.items() if k.startswith(f"scale scale={w} ")}
            lines.append(f"| {w:g} (S = {cell[0]['steps']}) | {cell[0]['mse']:.2e} | "
                         f"{format(cell[3]['mse'], '.2e') if 3 in cell else '-'} |")
        lines += ["", "| scale | inversion | model calls | MSE |", "|---|---|---|---|"]
        for k, r in inv.items():
            if k.startswith("calls"):
                kind = f"plain S = {r['steps']}" if r["k"] == 0 else f"fixed-point S = {r['steps']}, k = {r['k']}"
                lines.append(f"| {r['scale']:g} | {kind} | {r['calls']} | {r['mse']:.2e} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
