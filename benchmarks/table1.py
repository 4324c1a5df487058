"""The DDIM paper's Table 1 on the shipped model: classifier FID for S x η, plus σ̂, and seconds per image.

    python benchmarks/table1.py --n 500                         # the committed table (hours on a CPU)
    python benchmarks/table1.py --n 100 --steps 10,20,50 --out /tmp/table1_small   # a quick look

Results are written after every cell to OUT.json / OUT.md; run the same command again to resume.
Same as ``ddim-lesson eval table1``.
"""

from ddim_lesson.cli.table_commands import script_main

if __name__ == "__main__":
    script_main(__doc__, "table1")
