"""Pairs per row and query time of predecessor kNN for several query_split and query_seeds
settings (coherent blocks and seeded heaps, docs/design.md, "Queries"), against single-row
walks.

    .venv/bin/python perf/vecchia_pairs.py [--n 65536] [--rows 8192] [--rounds 5]
                                           [--splits 0 16 64] [--seeds 2]

Builds the vecchia-d3 tree (or a scaled copy) once and queries the top ``--rows`` ids (the
dearest rows of the job, each with a limit near n) in predecessor mode:

- one row per block on a sample of them, for each query_seeds in ``--seeds``: the pairs the
  tree's pruning leaves a row alone (the floor of any blocked walk with those seeds), which
  are also the pairs a blocked walk flags for it;
- blocks of 256 with each query_split in ``--splits`` (0: whole blocks in id order) and each
  query_seeds in ``--seeds`` (0: empty heaps), taking turns in every round so that machine
  load falls on each alike.

Prints pairs per row (and against single rows and the brute force's), the median query wall,
and the ratio of each setting's wall to the first setting's with its 95 % bootstrap interval
(``covertreex_bench.gate.decide``). Every setting must answer the same ids.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace

import numpy as np

from covertreex import CoverTree
from covertreex_bench.gate import decide
from covertreex_bench.runtime import make_runtime
from covertreex_bench.workloads import get_preset, load_workload, scaled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=65536, help="points (default 65536)")
    parser.add_argument("--rows", type=int, default=8192, help="top ids queried (default 8192)")
    parser.add_argument("--single", type=int, default=256,
                        help="rows sampled for single-row walks (default 256)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 16, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2],
                        help="query_seeds settings (default 2, the library's)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the thread-guard note
    preset = get_preset("vecchia-d3")
    if args.n != preset.n:
        preset = scaled(preset, args.n)
    work = load_workload(preset)
    tree = CoverTree(make_runtime(preset)).fit(work.backend)
    ids = np.arange(preset.n - args.rows, preset.n)
    sample = np.sort(np.random.default_rng(0).choice(ids, args.single, replace=False))
    floor = {}
    for sd in args.seeds:
        single = replace(tree, runtime=replace(tree.runtime, query_block=1, query_seeds=sd))
        report = single.knn_report(sample, preset.k, predecessor_mode=True)[2]
        floor[sd] = report.pairs_evaluated / args.single
    print(f"{preset.name}: top {args.rows} ids, mean id {ids.mean():.0f} (the brute force's "
          f"pairs per row); single-row walks on {args.single} of them: "
          + ", ".join(f"{floor[sd]:.0f} pairs per row with query_seeds={sd}" for sd in args.seeds))
    settings = [(sp, sd) for sd in args.seeds for sp in args.splits]
    trees = {(sp, sd): replace(tree, runtime=replace(tree.runtime, query_split=sp, query_seeds=sd))
             for sp, sd in settings}
    walls = {key: [] for key in settings}
    pairs, first = {}, None
    for r in range(args.rounds + 1):  # round 0 warms up and is not timed
        for key in (settings if r % 2 else settings[::-1]):
            start = time.perf_counter()
            idx, _, report = trees[key].knn_report(ids, preset.k, predecessor_mode=True)
            if r:
                walls[key].append(time.perf_counter() - start)
            pairs[key] = report.pairs_evaluated / args.rows
            first = idx if first is None else first
            if not np.array_equal(idx, first):
                raise SystemExit(f"query_split={key[0]}, query_seeds={key[1]} answered "
                                 "differently from the first setting")
    base = settings[0]
    for key in settings:
        sp, sd = key
        d = decide("wall", walls[base], walls[key], 1.0, 0.05)
        ratio = "" if key == base else (f", {d.ratio:.3f}x the first setting's "
                                        f"(95% CI {d.ci_low:.3f}-{d.ci_high:.3f})")
        print(f"  query_split={sp:<4d} query_seeds={sd}: {pairs[key]:8.0f} pairs per row, "
              f"{pairs[key] / floor[sd]:.2f}x single rows, {pairs[key] / ids.mean():.2f}x the "
              f"brute force; median wall {np.median(walls[key]):.2f} s{ratio}")


if __name__ == "__main__":
    main()
