"""FID at equal cost: DDIM, Heun and DPM-Solver++ 2M at a few model-call budgets, over seeds.

    python benchmarks/solver_fid.py --out benchmarks/results/solver_fid   # the committed result (n = 500, seeds 0,1,2)
    python benchmarks/solver_fid.py --n 100 --seeds 0,1 --nfes 10 --out /tmp/solver_fid   # a quick look

Every cell is one (solver, spacing, NFE budget, seed); seed k starts all cells from the same x_T,
so differences between solvers are read seed by seed against the seed-to-seed sd. Heun makes
2N-1 calls, so it spends the odd count at or below each budget (the table says which).
Results go to OUT.json / OUT.md after every cell; run the same command again to resume.
"""

from ddim_lesson.cli.table_commands import script_main

if __name__ == "__main__":
    script_main(__doc__, "solver_fid")
