"""How much Table 1's FID moves with the seed alone, and the same for real images.

    python benchmarks/fid_spread.py --n 500                    # the committed result (about 30 min on a CPU)
    python benchmarks/fid_spread.py --n 100 --cells 0:10,1:10 --seeds 0,1,2 --out /tmp/spread   # a quick look

Re-samples some cells of Table 1 with other seeds (seed 0 is the table's own) and measures the
FID of disjoint sets of real held-out images at the same n. A difference between two cells of
Table 1 smaller than about twice the sd here is not a difference the table can show.
Results go to OUT.json / OUT.md after every FID; run the same command again to resume.
Same as ``ddim-lesson eval spread``.
"""

from ddim_lesson.cli.table_commands import script_main

if __name__ == "__main__":
    script_main(__doc__, "spread")
