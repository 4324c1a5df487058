"""Train the FID feature classifier and write ddim_lesson/weights/classifier.* (a few minutes on a CPU).

    python benchmarks/train_classifier.py --epochs 3 --seed 0 --threads 1

Then regenerate the shipped test-set statistics:

    python -m ddim_lesson.evaluate.metrics --write-reference
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ddim_lesson.course.env import pick_threads
from ddim_lesson.nets.classifier import WEIGHTS
from ddim_lesson.train.classifier_train import train_classifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: env.pick_threads chooses)")
    p.add_argument("--out", default=str(WEIGHTS))
    a = p.parse_args()
    if a.threads == 0:
        print(f"torch uses {pick_threads().reason}")
    command = "python benchmarks/train_classifier.py " + shlex.join(sys.argv[1:])
    meta = train_classifier(a.out, a.epochs, a.batch_size, a.lr, a.seed, a.threads, command)
    print(f"{meta['params']:,} parameters, test accuracy {meta['test_accuracy']:.2%}, "
          f"{meta['wall_time_s']} s; saved {a.out}.safetensors/.json")


if __name__ == "__main__":
    main()
