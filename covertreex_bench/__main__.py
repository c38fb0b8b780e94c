"""``python -m covertreex_bench``: the same command as the ``covertreex`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
