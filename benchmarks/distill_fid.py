"""FID at equal model calls: distilled students (ddim-lesson distill) against their teacher's training-free solvers.

    python benchmarks/distill_fid.py --out benchmarks/results/distill_fid   # the committed result (n = 500,
        seeds 0,1,2; the shipped student fashion-mnist-distilled against fashion-mnist's DDIM, DPM-Solver++ 2M, 3M)
    python benchmarks/distill_fid.py --students runs/fashion-mnist-distilled/student-8 --n 100 --seeds 0 --out /tmp/dfid

Each student is sampled by DDIM at its own k steps (its card's "sampling"); the teacher by each solver at the same
k model calls, and by DDIM at --reference-steps (the grid the first round copied). Seed k starts every cell from the
same x_T, so the Markdown reads the student against each solver seed by seed; it also says what each student cost to
train. Results go to OUT.json / OUT.md after every cell; run the same command again to resume.
"""

from ddim_lesson.cli.table_commands import script_main

if __name__ == "__main__":
    script_main(__doc__, "distill_fid")
