"""How much Table 1's FID moves with the seed alone, and the same for real images.

    python benchmarks/fid_spread.py                                # the committed result (about 30 min on a CPU)
    python benchmarks/fid_spread.py --n 100 --cells 0:10,1:10 --seeds 0,1,2 --out /tmp/spread   # a quick look

Re-samples some cells of Table 1 with other seeds (seed 0 is the table's own) and measures the
FID of disjoint sets of real held-out images at the same n. A difference between two cells of
Table 1 smaller than about twice the sd here is not a difference the table can show.
Results go to OUT.json / OUT.md after every FID; run the same command again to resume.
"""

from __future__ import annotations

import argparse

import torch

from ddim_lesson.evaluate import SIGMA_HAT, SpreadConfig, run_spread, spread_markdown


def cells(s: str) -> tuple[tuple[float | str, int], ...]:
    """"0:10,1:50,sigma_hat:100" -> ((0.0, 10), (1.0, 50), ("sigma_hat", 100))."""
    try:
        pairs = [kv.split(":") for kv in s.split(",")]
        return tuple((r if r == SIGMA_HAT else float(r), int(steps)) for r, steps in pairs)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ETA:S pairs like 0:10,1:50,{SIGMA_HAT}:100, got {s!r}") from None


def ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,1,2, got {s!r}") from None


def main(argv: list[str] | None = None) -> None:
    d = SpreadConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=d.model, help="a shipped model's name or a checkpoint path")
    p.add_argument("--cells", type=cells, default=d.cells, help="ETA:S pairs (default 0:10,1:10,0:50,1:50)")
    p.add_argument("--seeds", type=ints, default=d.seeds, help="seeds (default 0,1,2,3,4; 0 is Table 1's)")
    p.add_argument("--n", type=int, default=d.n, help=f"samples per FID (default {d.n}, Table 1's)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--no-real", dest="real", action="store_false", help="skip the real-image sets")
    p.add_argument("--device", default=d.device)
    p.add_argument("--out", default=d.out, help="results path without suffix")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    a = p.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        cfg = SpreadConfig(model=a.model, cells=a.cells, seeds=a.seeds, n=a.n, batch_size=a.batch_size,
                           real=a.real, device=a.device, out=a.out)
    except ValueError as e:
        p.error(str(e))
    res = run_spread(cfg, progress=a.progress)
    print()
    print(spread_markdown(res))
    print(f"results: {cfg.out}.json and {cfg.out}.md")


if __name__ == "__main__":
    main()
