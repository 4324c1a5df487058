"""Speed of the package's samplers, as ratios measured in one run (A and B interleaved, median of rounds).

    python benchmarks/speed.py            # a few minutes on a 2-core CPU
    python benchmarks/speed.py --quick    # fewer rounds and smaller batches (a smoke test)
    python benchmarks/speed.py --json benchmarks/results/speed.json   # the committed result

It prints:
  (a) sampler overhead: ddim_sample with S steps / S bare model calls on the same batch
      (targets: <= 1.03 with the shipped UNet, <= 1.10 with the 2-D MLP);
  (b) our DDIM loop / diffusers' DDIMScheduler loop, same model, batch and steps (target <= 0.9),
      for the MLP also at small batches (--mlp-sweep), where the loop's own work is a larger share;
  (c) DDPM 1000 steps / DDIM 50 steps: the wall-time speedup, beside the FIDs of the committed table;
  on CUDA also images/s at batch 1024, training throughput, and the effect of bf16 and torch.compile.
Each round runs A then B, or B then A (alternating), so slow drifts of a shared machine cancel.
The targets are judged on the wall clock; the ratio of this process's CPU time is printed beside it,
because on a machine shared with other jobs the wall clock also counts time spent waiting for a core.
The code is in ddim_lesson.evaluate (timing, sampler_loops, speed, throughput) and ddim_lesson.cli.speed_script.
"""

from ddim_lesson.cli.speed_script import speed_main

if __name__ == "__main__":
    speed_main(__doc__)
