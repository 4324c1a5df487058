"""The DDIM paper's Table 1 on the shipped model: classifier FID for S x η, plus σ̂, and seconds per image.

    python benchmarks/table1.py --n 1000                        # the committed table (hours on a CPU)
    python benchmarks/table1.py --n 100 --steps 10,20,50 --out /tmp/table1_small   # a quick look

Results are written after every cell to OUT.json / OUT.md; run the same command again to resume.
Same as ``ddim-lesson eval table1``.
"""

from __future__ import annotations

import argparse

from ddim_lesson.evaluate import add_eval_args, cmd_eval

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_args(p, table="table1")
    try:
        cmd_eval(p.parse_args(), table="table1")
    except ValueError as e:  # a bad value: one line naming it, not a traceback
        p.error(str(e))
