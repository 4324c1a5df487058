"""The thread rule, measured: one UNet call with 1 thread, all cores, and pick_threads' choice, idle and busy.

Each count is timed idle and with one core kept busy by a spinning process, interleaved round by round.

    python benchmarks/threads.py --out benchmarks/results/threads   # the committed result
    python benchmarks/threads.py --rounds 3                          # a look: writes runs/eval/threads.{json,md}

Run it on an otherwise quiet machine: it makes the load it measures under.
"""

from ddim_lesson.cli.threads_script import threads_main

if __name__ == "__main__":
    threads_main(__doc__)
