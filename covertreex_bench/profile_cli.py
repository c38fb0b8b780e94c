"""``covertreex profile``: hook module for covertreex_bench.cli (see covertreex_bench.profiling.cli).

Interface: ``add_arguments(parser)`` fills an argparse parser; ``main(args) -> int`` takes the
argv list after the subcommand name (what covertreex_bench.cli passes), None for sys.argv, or a
namespace parsed by a parser that ``add_arguments`` filled.
"""

from __future__ import annotations

import sys

from .profiling.cli import add_arguments, build_parser, main

__all__ = ["add_arguments", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
