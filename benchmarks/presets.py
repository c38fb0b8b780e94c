#!/usr/bin/env python3
"""Deprecated wrapper: runs `covertreex bench --check` for each --preset (the logic lives in
covertreex.bench; see `covertreex bench --help`).

Kept so that older commands keep working:
  python benchmarks/presets.py                       # gold-d3 gold-d8 euclid-32k vecchia-d3
  python benchmarks/presets.py --preset quick --check
  python benchmarks/presets.py --preset gold-d8 --repeat 3 --json out/gold-d8.json

Recall is always checked. With several presets, --json PATH writes PATH-stem.<preset>.json per
preset. Exit status: the worst of the presets' (0 pass, 1 a threshold fails or a run fails,
2 a bad request).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PRESETS = ("gold-d3", "gold-d8", "euclid-32k", "vecchia-d3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/presets.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", metavar="NAME",
                        help=f"preset to run; repeat for several (default: {' '.join(DEFAULT_PRESETS)})")
    parser.add_argument("--repeat", default="1", metavar="N", help="median of N runs (default 1)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--check", action="store_true",
                        help="accepted for compatibility: recall is always checked")
    args = parser.parse_args(argv)

    from covertreex.cli import main as cli_main

    presets = list(dict.fromkeys(args.preset or DEFAULT_PRESETS))
    worst = 0
    for name in presets:
        cmd = ["bench", "--preset", name, "--check", "--repeat", args.repeat]
        if args.json:
            path = Path(args.json)
            if len(presets) > 1:
                path = path.with_name(f"{path.stem}.{name}{path.suffix or '.json'}")
            cmd += ["--json", str(path)]
        print(f"$ covertreex {' '.join(cmd)}", flush=True)
        rc = cli_main(cmd)
        worst = max(worst, rc)
        print(flush=True)
    return worst


if __name__ == "__main__":
    sys.exit(main())
