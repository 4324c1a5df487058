"""``python -m ddim_lesson ...``: the same as the ``ddim-lesson`` command (also under torchrun)."""

import sys

from .cli.main import main

sys.exit(main())
