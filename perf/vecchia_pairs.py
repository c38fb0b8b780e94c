"""How many pairs an exact residual kNN walk needs per row in predecessor mode (vecchia-d3).

    .venv/bin/python perf/vecchia_pairs.py [--n 32768] [--rows 256]

Builds the vecchia-d3 tree (or a scaled copy), then queries a sample of ids with predecessor
mode at several block sizes. With blocks of one row, the pairs evaluated are what the tree's
pruning leaves for that row alone: the floor of any blocked walk over this tree. The
triangular brute force needs i pairs for row i, so the printed ratio is how far below the
brute force's pair count the tree can go.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace

import numpy as np

from covertreex import CoverTree
from covertreex_bench.runtime import make_runtime
from covertreex_bench.workloads import get_preset, load_workload, scaled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32768, help="points (default: the preset's 32768)")
    parser.add_argument("--rows", type=int, default=256, help="sampled query ids (default 256)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the thread-guard note
    preset = get_preset("vecchia-d3")
    if args.n != preset.n:
        preset = scaled(preset, args.n)
    work = load_workload(preset)
    tree = CoverTree(make_runtime(preset)).fit(work.backend)
    ids = np.sort(np.random.default_rng(0).choice(preset.n, args.rows, replace=False))
    print(f"{preset.name}: k={preset.k}, {args.rows} sampled ids, mean id {ids.mean():.0f} "
          f"(the brute force evaluates that many pairs per row)")
    for block in (1, 16, 256):
        sized = replace(tree, runtime=replace(tree.runtime, query_block=block))
        _, _, report = sized.knn_report(ids, k=preset.k, predecessor_mode=True)
        per_row = report.pairs_evaluated / args.rows
        print(f"  blocks of {block:3d} rows: {per_row:8.0f} pairs per row, "
              f"{per_row / ids.mean():.2f}x the brute force's")


if __name__ == "__main__":
    main()
