"""Guidance and editing on the shipped class-conditional model: the tables of notebooks 07 and 08.

    python benchmarks/guidance.py --out benchmarks/results/guidance # every part, the committed settings and file
    python benchmarks/guidance.py --parts tradeoff --seeds 1        # one part, one more seed (resumes)
    python benchmarks/guidance.py --n-per-class 5 --out /tmp/g      # a quick look

Parts (results go to OUT.json / OUT.md after every cell; run again to resume, cells already there are kept):
- tradeoff:  for each guidance scale, n_per_class DDIM samples per class (S steps, η = 0) from the same
             seeded latents: on-class accuracy, FID against the test set, within-class diversity; one row per
             seed, plus real held-out images as the yardstick;
- sdedit:    blocky (4×4-block) test images edited by SDEdit (towards their label) at each strength: distance to
             the input, FID and accuracy;
             beside it, the same inputs inverted without a label and decoded with their label at a scale;
- edit:      "this shirt as a dress": invert test images with their label, decode with another;
- inversion: reconstruction error against the guidance scale (plain and fixed-point inversion), and against
             the number of model calls (plain S = 10 … 200, fixed-point S = 10 with k = 1 … 6).
"""

from ddim_lesson.cli.guidance_script import guidance_main

if __name__ == "__main__":
    guidance_main(__doc__)
