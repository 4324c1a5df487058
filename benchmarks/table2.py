"""The DDIM paper's Table 2 on the shipped model: reconstruction MSE of DDIM inversion against S.

    python benchmarks/table2.py --n 500                          # the committed table
    python benchmarks/table2.py --n 50 --out /tmp/table2_small  # a quick look

Each real test image x0 is encoded with ddim_invert (S steps) and decoded with ddim_sample (S steps,
η = 0). Same as ``ddim-lesson eval table2``.
"""

from __future__ import annotations

import argparse

from ddim_lesson.evaluate import add_eval_args, cmd_eval

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_args(p, table="table2")
    try:
        cmd_eval(p.parse_args(), table="table2")
    except ValueError as e:  # a bad value: one line naming it, not a traceback
        p.error(str(e))
