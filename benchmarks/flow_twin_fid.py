"""FID at equal model calls: the flow-matching twin (Euler in s) against the shipped ε-model (DDIM, DPM-Solver++ 2M).

    python benchmarks/flow_twin_fid.py --twin fashion-mnist-fm --out benchmarks/results/flow_twin_fid   # the committed
        result once the twin ships (n = 500, seeds 0,1,2, NFE 5,10,20, as the solver table)
    python benchmarks/flow_twin_fid.py --twin runs/fashion-mnist-fm/model --n 100 --seeds 0 --nfes 10 --out /tmp/ftf

Five methods per (NFE, seed): the ε-model with DDIM and with DPM-Solver++ 2M on its trailing grid and with DDIM on
the twin's grid (uniform in s), the twin with Euler on its own grid and on the ε-model's; so the objective and
the time grid are measured apart. Seed k starts every cell from the same x_T; the Markdown reads the pairs seed
by seed. Results go to OUT.json / OUT.md after every cell; run the same command again to resume.
"""

from ddim_lesson.cli.table_commands import script_main

if __name__ == "__main__":
    script_main(__doc__, "flow_twin_fid")
