"""The whole predecessor-mode kNN job on trees inserted in Hilbert order, and in Hilbert order
within blocks of ids (every id below the first bound enters before any above it, and so on).

    .venv/bin/python perf/insert_order.py [--preset vecchia-131k] [--rounds 2]
                                          [--blocks 65536 65536,98304]

Rows of a predecessor-mode job may take only lower ids; on a tree whose upper levels hold the
low ids, the subtrees of high ids fall to the walk's smallest-id test early (perf/README.md,
"By id range"). The library has no such order: for its builds the script swaps
``covertreex.cover_tree.insertion_order`` for one that sorts by (id block, Hilbert key), so the
trees differ in their insertion order only. Builds each tree once (the build's wall printed),
then every tree answers every row once a round, the order of the trees turned round every
round. Prints each tree's median query wall, pairs per row, its wall against the Hilbert
tree's with the 95 % bootstrap interval (``covertreex_bench.gate.decide``), and whether its
ids equal the Hilbert tree's.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import covertreex.cover_tree as cover_tree
from covertreex import CoverTree
from covertreex.insert.order import hilbert_keys
from covertreex_bench.gate import decide
from covertreex_bench.runtime import make_runtime
from covertreex_bench.workloads import get_preset, load_workload, scaled


def _bounds(text: str, n: int) -> tuple:
    try:
        bounds = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise ValueError(f"--blocks {text}: expected ids separated by commas, such as 65536,98304") from None
    edges = (0, *bounds, n)
    if any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"--blocks {text}: bounds must rise strictly between 0 and n = {n}")
    return bounds


def _by_blocks(bounds: tuple):
    def order(kind, coords, seed):
        block = np.searchsorted(np.asarray(bounds), np.arange(coords.shape[0]), side="right")
        return np.lexsort((hilbert_keys(coords), block)).astype(np.int64)
    return order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vecchia-131k")
    parser.add_argument("--n", type=int, default=None, help="points (default: the preset's)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (default 2)")
    parser.add_argument("--blocks", nargs="+", default=["65536"],
                        help="one tree per comma-separated list of id bounds (default 65536)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the thread-guard note
    try:
        preset = get_preset(args.preset)
        if args.n is not None and args.n != preset.n:
            preset = scaled(preset, args.n)
        variants = {"hilbert": None, **{f"blocks {b}": _bounds(b, preset.n) for b in args.blocks}}
    except ValueError as exc:
        parser.error(str(exc))
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    work = load_workload(preset)
    runtime = make_runtime(preset)
    hilbert = cover_tree.insertion_order
    trees = {}
    try:
        for name, bounds in variants.items():
            cover_tree.insertion_order = hilbert if bounds is None else _by_blocks(bounds)
            start = time.perf_counter()
            trees[name] = CoverTree(runtime).fit(work.fit_input)
            print(f"{name}: build {time.perf_counter() - start:.2f} s", flush=True)
    finally:
        cover_tree.insertion_order = hilbert
    n, k = preset.n, preset.k
    warm = np.arange(n // 3, n // 3 + 1024)
    for tree in trees.values():
        tree.knn_report(warm, k, predecessor_mode=True)
    walls = {name: [] for name in trees}
    pairs, ids = {}, {}
    for r in range(args.rounds):
        for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
            start = time.perf_counter()
            ids[name], _, report = trees[name].knn_report(None, k, predecessor_mode=True)
            walls[name].append(time.perf_counter() - start)
            pairs[name] = report.pairs_evaluated / n
            print(f"  round {r + 1}, {name}: {walls[name][-1]:.2f} s, {pairs[name]:.0f} pairs per row",
                  flush=True)
    for name in trees:
        d = decide("wall", walls["hilbert"], walls[name], 1.0, 0.05)
        ratio = "" if name == "hilbert" or d.ratio is None else (
            f", {d.ratio:.3f}x the Hilbert tree's (95% CI {d.ci_low:.3f}-{d.ci_high:.3f})")
        print(f"{name}: median query wall {np.median(walls[name]):.2f} s, {pairs[name]:.0f} pairs "
              f"per row{ratio}; ids equal the Hilbert tree's: {np.array_equal(ids[name], ids['hilbert'])}")


if __name__ == "__main__":
    main()
