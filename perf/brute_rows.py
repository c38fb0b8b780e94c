"""Query time of a whole predecessor-mode kNN job for several query_brute settings (brute force
for early rows, docs/design.md, "Queries"), and what the early rows cost walked and scanned.

    .venv/bin/python perf/brute_rows.py [--preset vecchia-131k] [--n N] [--rounds 2]
                                        [--brute 0 32768 49152] [--early 32768]
                                        [--ranges 40960 65536 98304 [--prefix]]

Builds the preset's tree once, then:

- with ``--early L``: rows 0 .. L - 1 alone, walked (query_brute=0) and scanned
  (query_brute=L), two rounds each: seconds, pairs and wall nanoseconds a pair, against the
  time the same pairs would take at the DGEMM rate ``--dgemm`` (GFLOP/s, 2 m flops a pair);
- with ``--ranges A B ...``: the rows in id ranges [0, A), [A, B), ..., [last, n) alone, each
  as one query call with the default query_brute, two rounds: where the job's time goes by id;
  with ``--prefix`` also on a tree of only the points below each range's end (its rows' every
  predecessor and nothing above), built apart, the two trees' rounds interleaved: what a
  snapshot of the build after those points would save the range;
- every row, once per setting in ``--brute`` in each round, the order turned round every
  round so that machine load falls on each alike; round 0 warms up on a few rows
  (``--rounds 0`` skips these whole-job rounds, for ``--early`` or ``--ranges`` alone).

Prints each setting's median wall and pairs per row, its wall against the first setting's
with the 95 % bootstrap interval (``covertreex_bench.gate.decide``), and how many rows
returned other ids than the first setting (near-ties may swap; the exactness tests judge
them against the reference).
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace

import numpy as np

from covertreex import CoverTree, ResidualBackend
from covertreex_bench.gate import decide
from covertreex_bench.runtime import make_runtime
from covertreex_bench.workloads import get_preset, load_workload, scaled


def _run(tree, ids, k):
    start = time.perf_counter()
    idx, _, report = tree.knn_report(ids, k, predecessor_mode=True)
    return idx, time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vecchia-131k")
    parser.add_argument("--n", type=int, default=None, help="points (default: the preset's)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (default 2)")
    parser.add_argument("--brute", type=int, nargs="+", default=[0, 32768, 49152],
                        help="query_brute settings (default 0 32768 49152)")
    parser.add_argument("--early", type=int, default=0,
                        help="also time rows below this id alone, walked and scanned")
    parser.add_argument("--ranges", type=int, nargs="+", default=[],
                        help="also time the rows of each id range these bounds cut, alone")
    parser.add_argument("--prefix", action="store_true",
                        help="with --ranges: also on a tree of the points below each range's end")
    parser.add_argument("--dgemm", type=float, default=82.0,
                        help="DGEMM GFLOP/s on the walk threads, for the floor (default 82)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the thread-guard note
    try:
        preset = get_preset(args.preset)
    except ValueError as exc:
        parser.error(str(exc))
    if args.n is not None and args.n != preset.n:
        preset = scaled(preset, args.n)
    edges = [0, *args.ranges, preset.n]
    if args.ranges and any(lo >= hi for lo, hi in zip(edges, edges[1:])):
        parser.error(f"--ranges must rise strictly between 0 and n = {preset.n}: {args.ranges}")
    if args.prefix and not args.ranges:
        parser.error("--prefix times the rows of --ranges; give --ranges too")
    work = load_workload(preset)
    tree = CoverTree(make_runtime(preset)).fit(work.backend)
    n, k, m = preset.n, preset.k, preset.inducing
    print(f"{preset.name}: n={n}, k={k}, m={m}")
    trees = {b: replace(tree, runtime=replace(tree.runtime, query_brute=b))
             for b in {*args.brute, 0, args.early}}
    if args.early:
        ids = np.arange(args.early)
        for b in (0, args.early):
            _run(trees[b], ids[:1024], k)
        for r in range(2):
            for b in (0, args.early):
                _, wall, report = _run(trees[b], ids, k)
                pairs = report.pairs_evaluated
                print(f"  rows below {args.early}, {'scanned' if b else 'walked'}: {wall:.2f} s, "
                      f"{pairs / 1e6:.0f}M pairs, {wall * 1e9 / pairs:.1f} ns a pair; at "
                      f"{args.dgemm:g} GFLOP/s {pairs * 2 * m / (args.dgemm * 1e9):.2f} s")
    if args.ranges:
        _time_ranges(tree, edges, k)
    if args.prefix:
        _time_prefix_trees(tree, work, edges, k)
    if not args.rounds:
        return
    walls = {b: [] for b in args.brute}
    pairs, first = {}, None
    for r in range(args.rounds + 1):  # round 0 warms up and is not timed
        for b in (args.brute if r % 2 else args.brute[::-1]):
            if not r:
                _run(trees[b], np.r_[np.arange(600), np.arange(n - 512, n)], k)
                continue
            idx, wall, report = _run(trees[b], None, k)
            walls[b].append(wall)
            pairs[b] = report.pairs_evaluated / n
            first = idx if first is None else first
            differ = int(np.count_nonzero((idx != first).any(axis=1)))
            print(f"  round {r}, query_brute={b}: {wall:.2f} s, {pairs[b]:.0f} pairs per row, "
                  f"{differ} rows with other ids than the first run")
    base = args.brute[0]
    for b in args.brute:
        d = decide("wall", walls[base], walls[b], 1.0, 0.05)
        ratio = "" if b == base else (f", {d.ratio:.3f}x the first setting's "
                                      f"(95% CI {d.ci_low:.3f}-{d.ci_high:.3f})")
        print(f"query_brute={b:<6d}: median wall {np.median(walls[b]):.2f} s, "
              f"{pairs[b]:.0f} pairs per row{ratio}")


def _time_ranges(tree, edges, k: int) -> None:
    """Wall, pairs per row and wall ns a pair of the rows of each id range, two rounds."""
    _run(tree, np.arange(1024), k)
    total = [0.0, 0.0]
    for lo, hi in zip(edges, edges[1:]):
        for r in range(2):
            _, wall, report = _run(tree, np.arange(lo, hi), k)
            total[r] += wall
            print(f"  rows {lo} .. {hi - 1}, round {r + 1}: {wall:.2f} s, "
                  f"{report.pairs_evaluated / (hi - lo):.0f} pairs per row, "
                  f"{wall * 1e9 / report.pairs_evaluated:.1f} ns a pair")
    print(f"  all ranges: {total[0]:.2f} s and {total[1]:.2f} s")


def _prefix_input(work, hi: int):
    """The fit input of the preset's first ``hi`` points (the same rows of V, p and the
    coordinates for a residual preset), so a row's distances are those of the full tree."""
    if work.preset.is_residual:
        b = work.backend
        return ResidualBackend.from_factors(b.v_matrix[:hi], b.p_diag[:hi], b.coords[:hi], b.kernel)
    return work.points[:hi]


def _time_prefix_trees(tree, work, edges, k: int) -> None:
    """Each range between the first and the last on the full tree and on a tree of the points
    below its end, two rounds with the order turned round; build seconds, and whether the ids
    agree. The first range is scanned and the last one's tree would be the full tree."""
    for lo, hi in zip(edges[1:-2], edges[2:-1]):
        start = time.perf_counter()
        prefix = CoverTree(tree.runtime).fit(_prefix_input(work, hi))
        built = time.perf_counter() - start
        ids = np.arange(lo, hi)
        for t in (tree, prefix):
            _run(t, ids[:512], k)
        idx = {}
        for r in range(2):
            for name, t in ((("full", tree), ("prefix", prefix)) if r % 2 == 0
                            else (("prefix", prefix), ("full", tree))):
                idx[name], wall, report = _run(t, ids, k)
                print(f"  rows {lo} .. {hi - 1}, round {r + 1}, {name} tree ({t.arrays.n} points): "
                      f"{wall:.2f} s, {report.pairs_evaluated / (hi - lo):.0f} pairs per row")
        print(f"  the tree of points 0 .. {hi - 1} built in {built:.2f} s; same ids on both "
              f"trees: {np.array_equal(idx['full'], idx['prefix'])}")


if __name__ == "__main__":
    main()
