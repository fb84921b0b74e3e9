"""``python -m trafl.plan``: the same as ``trafl plan``."""

import sys

from trafl.cli import main

sys.exit(main(["plan", *sys.argv[1:]]))
