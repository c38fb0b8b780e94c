"""Per-pair cost of the residual tile's V products and distance pass, one thread, by tile rows.

    .venv/bin/python perf/tile_parts.py [--preset vecchia-d3] [--cols 1024] [--rounds 7]

On the preset's V (rows and columns drawn at random from its ids, so columns come from memory
as a walk's frontier does), for tiles of 256, 128, 64, 32, 16 and 8 rows, interleaved:

- ``gram_direct`` (V read in place, four rows by six columns a step) with every pair
  flagged, which gives a chunk its V products (covertreex/metrics/residual/tile_kernels.py),
  against gathering the columns for one BLAS GEMM;
- on a chunk of 256 rows x 512 columns with 60 % of its pairs flagged, ``finish_dense`` (every
  pair, no branch) against ``finish_chunk`` (flagged pairs only);
- ``gram_direct`` on 32 rows (about a walk's part) by 512 columns, with every pair flagged and
  with a tenth of them, its columns either the same in every call (in cache after the first)
  or drawn afresh from all of V each call (from memory, as a walk's next frontier): ns a
  flagged pair;
- a walk's chunk, 256 gathered rows against 512 columns drawn afresh from all of V each call,
  with the rows gathered into a buffer at V's own offset within a 4 KiB page and into one half
  a page from it (at m = 512 each row of V is 4 KiB, so the first shares L1 sets with V's rows);
- a brute-force scan's chunks: 256 consecutive rows against successive runs of 512
  consecutive ids, V read in place for both, ``gram_direct`` against BLAS, which is what the
  tile kernel takes for such a chunk.

Prints medians in ns a pair. BLAS is held on one thread, as the thread guard holds it while the
walks run one block per core.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from covertreex import Runtime
from covertreex.metrics.residual.metric import ResidualMetric
from covertreex.metrics.residual.tile_kernels import finish_chunk, finish_dense, gram_direct
from covertreex_bench.workloads import load_workload

ROWS = (256, 128, 64, 32, 16, 8)


def _median_ns(fn, pairs: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / pairs * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vecchia-d3", help="a residual preset")
    parser.add_argument("--cols", type=int, default=1024, help="columns a tile (default 1024)")
    parser.add_argument("--rounds", type=int, default=7, help="timings each (default 7)")
    args = parser.parse_args()
    work = load_workload(args.preset)
    if work.backend is None:
        parser.error(f"preset {args.preset!r} is not residual")
    metric = ResidualMetric(work.backend, Runtime(metric="residual_correlation").plan.tiles)
    v, n = metric.v, metric.n
    rng = np.random.default_rng(0)
    every = np.zeros((0, 0), dtype=np.bool_)  # no flags: every pair, as a dense chunk
    print(f"{args.preset}: V {v.shape[0]} x {v.shape[1]}, {args.cols} columns, one thread, "
          f"medians of {args.rounds}, ns a pair")
    with threadpool_limits(limits=1, user_api="blas"):
        for b in ROWS:
            rows = rng.choice(n, b, replace=False)
            cols = np.sort(rng.choice(n, args.cols, replace=False)).astype(np.int64)
            vq = np.ascontiguousarray(v[rows])
            rows_at = np.arange(b)
            out = np.empty((b, args.cols))
            gathered = np.empty((args.cols, v.shape[1]))

            def direct():
                gram_direct(vq, v, cols, every, rows_at, 0, out)

            def blas():
                np.take(v, cols, axis=0, out=gathered)
                np.dot(vq, gathered.T, out=out)

            direct(), blas()  # compile and warm up
            costs = {"direct": [], "blas": []}
            for _ in range(args.rounds):
                costs["direct"].append(_median_ns(direct, b * args.cols, 1))
                costs["blas"].append(_median_ns(blas, b * args.cols, 1))
            d, g = (statistics.median(costs[key]) for key in ("direct", "blas"))
            print(f"  {b:3d} rows: gram_direct {d:6.1f}, gather and BLAS GEMM {g:6.1f}")
        b, w = 256, 512
        rows = rng.choice(n, b, replace=False).astype(np.int64)
        cols = rng.choice(n, w, replace=False).astype(np.int64)
        active = rng.random((b, w)) < 0.6
        ktile = metric.kernel_tile(rows, cols)
        gram = v[rows] @ v[cols].T
        pos = np.arange(b)
        out = np.empty((b, w))
        flagged = statistics.median(_median_ns(
            lambda: finish_chunk(metric.inv_sqrt_p, rows, pos, cols, ktile, gram, active, 0, out),
            b * w, 1) for _ in range(args.rounds + 1))
        dense = statistics.median(_median_ns(
            lambda: finish_dense(metric.inv_sqrt_p, rows, pos, cols, ktile, gram, 0, out),
            b * w, 1) for _ in range(args.rounds + 1))
        print(f"  distance pass, 256 x 512, 60 % flagged: finish_chunk {flagged:.2f}, "
              f"finish_dense {dense:.2f}")
        _fresh_columns(v, rng, args.rounds)
        _gathered_rows(v, rng, args.rounds)
        _scan_chunks(v, rng, args.rounds)


def _fresh_columns(v: np.ndarray, rng: np.random.Generator, rounds: int) -> None:
    """gram_direct's ns a flagged pair on 32 x 512 tiles, columns in cache or from memory."""
    b, w, n = 32, 512, v.shape[0]
    vq = np.ascontiguousarray(v[rng.choice(n, b, replace=False)])
    pos = np.arange(b)
    out = np.empty((b, w))
    calls = 64
    # Column sets drawn before timing; one call's set is 2 MiB of V, 64 of them 128 MiB.
    fresh = [rng.choice(n, w, replace=False).astype(np.int64) for _ in range(calls)]
    for density in (1.0, 0.1):
        active = rng.random((b, w)) < density
        flags = int(active.sum())
        costs = {}
        for name, sets in (("same columns", [fresh[0]] * calls), ("fresh columns", fresh)):
            def run(sets=sets):
                for cols in sets:
                    gram_direct(vq, v, cols, active, pos, 0, out)
            run()
            costs[name] = statistics.median(_median_ns(run, calls * flags, 1)
                                            for _ in range(rounds))
        print(f"  gram_direct, 32 x 512, {density:.0%} flagged: ns a flagged pair, "
              + ", ".join(f"{name} {cost:.1f}" for name, cost in costs.items()))


def _at_offset(v: np.ndarray, rows: int, offset: int) -> np.ndarray:
    """An uninitialised (rows, m) float64 array whose address is v's plus offset bytes,
    modulo 4 KiB."""
    flat = np.empty(rows * v.shape[1] + 512)
    shift = ((v.ctypes.data + offset - flat.ctypes.data) % 4096) // 8
    return flat[shift:shift + rows * v.shape[1]].reshape(rows, v.shape[1])


def _gathered_rows(v: np.ndarray, rng: np.random.Generator, rounds: int) -> None:
    """gram_direct's ns a pair on 256 x 512 chunks, rows at V's page offset or half a page off."""
    b, w, n, calls = 256, 512, v.shape[0], 16
    rows = rng.choice(n, b, replace=False)
    fresh = [rng.choice(n, w, replace=False).astype(np.int64) for _ in range(calls)]
    every, pos, out = np.zeros((0, 0), dtype=np.bool_), np.arange(b), np.empty((b, w))
    costs = {}
    for name, offset in (("at V's offset", 0), ("half a page off", 2048)):
        vq = _at_offset(v, b, offset)
        vq[:] = v[rows]

        def run(vq=vq):
            for cols in fresh:
                gram_direct(vq, v, cols, every, pos, 0, out)
        run()
        costs[name] = statistics.median(_median_ns(run, calls * b * w, 1) for _ in range(rounds))
    print("  gram_direct, 256 gathered rows x 512 fresh columns: "
          + ", ".join(f"rows {name} {cost:.1f}" for name, cost in costs.items()))


def _scan_chunks(v: np.ndarray, rng: np.random.Generator, rounds: int) -> None:
    """ns a pair of a scan's V products: 256 rows against 64 successive 512-id chunks."""
    b, w, chunks = 256, 512, 64
    # A scan block's rows are consecutive ids, which the tile kernel reads in place too.
    r0 = int(rng.integers(0, v.shape[0] - b + 1))
    vq = v[r0:r0 + b]
    starts = range(0, min(chunks * w, v.shape[0] - w + 1), w)
    every, pos, out = np.zeros((0, 0), dtype=np.bool_), np.arange(b), np.empty((b, w))

    def direct():
        for c0 in starts:
            gram_direct(vq, v, np.arange(c0, c0 + w), every, pos, 0, out)

    def blas():
        for c0 in starts:
            np.dot(vq, v[c0:c0 + w].T, out=out)

    direct(), blas()
    pairs = b * w * len(starts)
    costs = {"direct": [], "blas": []}
    for _ in range(rounds):
        costs["direct"].append(_median_ns(direct, pairs, 1))
        costs["blas"].append(_median_ns(blas, pairs, 1))
    d, g = (statistics.median(costs[key]) for key in ("direct", "blas"))
    print(f"  scan chunks, 256 x 512 consecutive ids: gram_direct {d:.1f}, BLAS in place {g:.1f}")


if __name__ == "__main__":
    main()
