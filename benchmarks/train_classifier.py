"""Train the FID feature classifier and write ddim_lesson/weights/classifier.* (a few minutes on a CPU).

    python benchmarks/train_classifier.py --epochs 3 --seed 0 --threads 1

Then regenerate the shipped test-set statistics:

    python -m ddim_lesson.cli.fid_tool --write-reference
"""

from ddim_lesson.cli.classifier_script import train_classifier_main

if __name__ == "__main__":
    train_classifier_main(__doc__)
