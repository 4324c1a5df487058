"""The gallery: one figure per notebook, from the notebook's own code, for the README.

Each notebook tags the one cell whose figure represents it with the cell tag ``gallery``. This runs the
notebooks from the top (a few minutes for all of them on a laptop CPU) and writes
notebooks/img/gallery/NN.png, at most 640 px wide.

    python benchmarks/gallery.py                 # every notebook
    python benchmarks/gallery.py --only 03,06    # some of them
"""

from ddim_lesson.cli.gallery_script import gallery_main

if __name__ == "__main__":
    gallery_main(__doc__)
