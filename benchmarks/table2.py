"""The DDIM paper's Table 2 on the shipped model: reconstruction MSE of DDIM inversion against S.

    python benchmarks/table2.py --n 500                          # the committed table
    python benchmarks/table2.py --n 50 --out /tmp/table2_small  # a quick look

Each real test image x0 is encoded with ddim_invert (S steps) and decoded with ddim_sample (S steps,
η = 0). Same as ``ddim-lesson eval table2``.
"""

from ddim_lesson.cli.table_commands import script_main

if __name__ == "__main__":
    script_main(__doc__, "table2")
