"""Euclidean kNN query time and pairs evaluated for several subtree-scan sizes, against cKDTree.

    .venv/bin/python perf/subtree_scan.py [--preset euclid-32k] [--rounds 11] [--sizes 0 64 256 1024]

Fits the preset's tree once, then times ``knn`` on the preset's fresh queries with
``covertreex.engine.layout.SUBTREE_SCAN_MAX`` set to each size in turn (0: walk every node), and
scipy's cKDTree with as many workers as Numba has threads, all interleaved in one loop so
that machine noise hits every variant alike; cKDTree starts after the tree's worker threads
have gone idle (covertreex_bench.bench.settle_workers). Prints medians, pairs evaluated per query and
the ratio to cKDTree (issue 2 asks for at most 2x).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
from scipy.spatial import cKDTree

import covertreex.query.knn as knn_module
from covertreex import CoverTree
from covertreex_bench.bench import settle_workers
from covertreex_bench.runtime import make_runtime
from covertreex.engine.layout import SUBTREE_SCAN_MAX
from covertreex_bench.workloads import load_workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="euclid-32k", help="a Euclidean preset")
    parser.add_argument("--rounds", type=int, default=11, help="interleaved timings (default 11)")
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=sorted({0, 64, SUBTREE_SCAN_MAX, 1024}),
                        help=f"scan sizes to compare (default 0 64 {SUBTREE_SCAN_MAX} 1024)")
    args = parser.parse_args()
    work = load_workload(args.preset)
    if work.queries is None:
        parser.error(f"preset {args.preset!r} is not Euclidean")
    k = work.preset.k
    workers = numba.get_num_threads()
    tree = CoverTree(make_runtime(work.preset)).fit(work.points)
    kd = cKDTree(work.points)
    times = {size: [] for size in args.sizes}
    pairs = {}
    for size in args.sizes:  # compile and count outside the timings
        knn_module.SUBTREE_SCAN_MAX = size
        pairs[size] = tree.knn_report(work.queries, k)[2].pairs_evaluated / len(work.queries)
    kd_s = []
    for _ in range(args.rounds):
        for size in args.sizes:
            knn_module.SUBTREE_SCAN_MAX = size
            t0 = time.perf_counter()
            tree.knn(work.queries, k)
            times[size].append(time.perf_counter() - t0)
        settle_workers()
        t0 = time.perf_counter()
        kd.query(work.queries, k=k, workers=workers)
        kd_s.append(time.perf_counter() - t0)
    knn_module.SUBTREE_SCAN_MAX = SUBTREE_SCAN_MAX
    kd_ms = statistics.median(kd_s) * 1e3
    print(f"{args.preset}: {len(work.queries)} queries, k={k}, {workers} threads, "
          f"median of {args.rounds}")
    print(f"{'scan size':>10} {'query ms':>9} {'pairs/query':>12} {'x cKDTree':>10}")
    for size in args.sizes:
        ms = statistics.median(times[size]) * 1e3
        mark = "  (default)" if size == SUBTREE_SCAN_MAX else ""
        print(f"{size:>10} {ms:>9.1f} {pairs[size]:>12.0f} {ms / kd_ms:>10.2f}{mark}")
    print(f"{'cKDTree':>10} {kd_ms:>9.1f}")


if __name__ == "__main__":
    main()
