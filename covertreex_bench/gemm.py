"""The DGEMM probe: what BLAS reaches on the shape of the walk's tiles, on the walk's threads.

The residual walk's tiles are chains of small GEMMs, (query_block x m) @ (m x TILE_CHUNK),
one walk thread per core with BLAS held on one thread (docs/design.md, "Telemetry", and the
thread guard). ``dgemm_gflops`` times that GEMM the same way: ``workers`` Python threads, each
repeating ``np.dot`` on its own operands while BLAS is pinned to one thread (threadpoolctl),
so the bench can say how close the tiles come to the GEMM peak of this machine, under the
load it had during the same run (``gemm_share`` in the bench JSON).
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

# Timed rounds and the length of each: about 0.75 s in all with the warm-up round, short
# enough to add to every residual bench run, long enough for a median over several rounds.
ROUNDS = 5
ROUND_S = 0.125


@dataclass(frozen=True)
class GemmProbe:
    """Aggregate GFLOP/s of ``workers`` threads: the median of ``rounds`` (one per timed round)."""

    gflops: float
    rounds: tuple
    shape: tuple     # (rows, inner, cols) of one product
    workers: int


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _repeat_dot(barrier, a, b, out, reps: int) -> None:
    barrier.wait()
    for _ in range(reps):
        np.dot(a, b, out=out)


def _round(pool, operands, reps: int) -> float:
    """Seconds from a shared start until every thread has done ``reps`` products."""
    barrier = threading.Barrier(len(operands) + 1)
    futures = [pool.submit(_repeat_dot, barrier, *ops, reps) for ops in operands]
    barrier.wait()
    start = time.perf_counter()
    for future in futures:
        future.result()
    return time.perf_counter() - start


def dgemm_gflops(rows: int, inner: int, cols: int, workers: int, rounds: int = ROUNDS,
                 round_s: float = ROUND_S) -> GemmProbe:
    """Time (rows x inner) @ (inner x cols) float64 products on ``workers`` threads at once.

    Each thread owns its operands (seeded standard normals) and output. A round starts every
    thread at once (a barrier) and lasts until the last one has done its products. One
    product on every thread sizes a first round of about ``round_s`` seconds, which warms
    threads and caches up, is not kept, and resizes the ``rounds`` timed rounds to about
    ``round_s`` each. Returns a ``GemmProbe``.
    """
    rows, inner, cols = (_positive_int(v, name) for v, name in
                         ((rows, "rows"), (inner, "inner"), (cols, "cols")))
    workers, rounds = _positive_int(workers, "workers"), _positive_int(rounds, "rounds")
    if not round_s > 0:
        raise ValueError(f"round_s must be > 0 seconds, got {round_s!r}")
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    operands = [(rng.standard_normal((rows, inner)), rng.standard_normal((inner, cols)),
                 np.empty((rows, cols))) for _ in range(workers)]
    flops = 2.0 * rows * inner * cols
    samples = []
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        reps = max(1, int(round_s / max(_round(pool, operands, 1), 1e-9)))
        # The warm-up round also resizes the rounds: threads that share cores (or a loaded
        # machine) run slower than the one product alone.
        reps = max(1, int(reps * round_s / max(_round(pool, operands, reps), 1e-9)))
        for _ in range(rounds):
            samples.append(workers * reps * flops / _round(pool, operands, reps) / 1e9)
    return GemmProbe(float(statistics.median(samples)), tuple(samples), (rows, inner, cols), workers)
