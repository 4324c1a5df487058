"""Which timesteps? Classifier FID of DDIM at S = 10 per spacing (leading, trailing, linspace, quadratic), over seeds.

    python benchmarks/spacing_fid.py --out benchmarks/results/spacing_fid   # the committed result (η = 0, n = 500,
                                                                             # seeds 0-4; about 10 min on a CPU)
    python benchmarks/spacing_fid.py --n 100 --seeds 0,1,2 --out /tmp/spacing_fid   # a quick look

Seed k starts every spacing from the same x_T (Table 1's for seed k), so the spacings are read
against trailing seed by seed, beside the seed-to-seed sd. Notebook 03 reads the result.
Results go to OUT.json / OUT.md after every cell; run the same command again to resume.
"""

from ddim_lesson.cli.table_commands import script_main

if __name__ == "__main__":
    script_main(__doc__, "spacing_fid")
