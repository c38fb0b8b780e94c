"""Blocked tree walk drivers: Numba end to end (phase 6 on) or a Python loop (off), and the
thread pool that walks independent blocks of rows side by side."""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .frontier_kernels import expand_frontier
from ..telemetry import WALK_MS
from ..threads import default_threads
from .walk_kernels import KNN, SCAN, initial_active, visit_tile

__all__ = ["KNN", "SCAN", "WalkPool", "walk_block", "walk_blocks"]


def walk_block(metric, qdata, mode, rows, exclude, limit, root, levels, radii, parent_dist,
               min_id_below, child_ptr, child_idx, best, parent, pdist, hd, hi, workspace,
               counters) -> int:
    """Walk a block of rows (b,) through the tree; returns the pairs evaluated.

    mode SCAN fills best/parent/pdist (b,) (start them at int max / any / inf); mode KNN
    fills the heaps hd, hi (b, k). Unused state arrays may be empty. workspace: a
    ``metric.workspace`` of at least b rows that no other thread uses meanwhile (the
    phase-6 tiles' scratch).
    """
    topk = bool(metric.phases.topk_selection)
    if metric.phases.nopython_chunk_loop:
        return metric.kernels.walk_block(qdata, metric.data, mode, topk, rows, exclude, limit,
                                         root, levels, radii, parent_dist, min_id_below,
                                         child_ptr, child_idx, metric.prune_slack, best, parent,
                                         pdist, hd, hi, workspace, counters)
    # Pre-audit shape: Python drives the loop and calls the tile provider per chunk.
    nodes = np.full(1, root, dtype=np.int64)
    active = initial_active(mode, root, min_id_below, limit)
    pairs = 0
    while nodes.shape[0]:
        dist = metric.tile(qdata, rows, nodes, counters)
        pairs += dist.size
        bound = visit_tile(mode, topk, dist, nodes, active, exclude, limit, levels, best, parent,
                           pdist, hd, hi)
        nodes, active = expand_frontier(dist, nodes, active, bound, mode == SCAN, limit,
                                        metric.prune_slack, levels, radii, parent_dist, min_id_below,
                                        child_ptr, child_idx)
    return pairs


class WalkPool:
    """The threads and tile workspaces of the blocked walks of one build or query run.

    ``workers`` threads (default: the cores available), as with scipy's ``workers=``: the
    phase-6 walk holds no GIL, and BLAS, which the thread guard keeps on one thread, runs
    one GEMM per core. One ``metric.workspace(block)`` per thread, allocated here once and
    reused by every task, so a build does not fault in fresh scratch pages every batch.
    Use it as a context manager; it shuts its threads down on exit.
    """

    def __init__(self, metric, block: int, workers: int | None):
        self.block = int(block)
        self.workers = max(1, int(workers or default_threads()))
        self._spare = queue.SimpleQueue()
        for _ in range(self.workers):
            self._spare.put(metric.workspace(self.block))
        self._executor = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def __enter__(self) -> "WalkPool":
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.shutdown()

    def run(self, tasks, counters):
        """Run every ``task(workspace, task_counters)`` on the pool, in order of submission,
        each with a free workspace and a telemetry row of its own; the rows are summed into
        ``counters`` (an empty array switches telemetry off) and each task's wall time goes
        to their WALK_MS slot, so telemetry milliseconds are thread time.
        Returns the tasks' results in order."""
        local = np.zeros((len(tasks), counters.shape[0]))
        timed = counters.shape[0] > 0

        def run(t):
            workspace = self._spare.get()
            start = time.perf_counter()
            try:
                return tasks[t](workspace, local[t])
            finally:
                self._spare.put(workspace)
                if timed:
                    local[t, WALK_MS] += (time.perf_counter() - start) * 1e3

        if self._executor is None or len(tasks) < 2:
            results = [run(t) for t in range(len(tasks))]
        else:
            results = list(self._executor.map(run, range(len(tasks))))
        counters += local.sum(axis=0)
        return results


def walk_blocks(metric, qdata, mode, rows, exclude, limit, tree, best, parent, pdist, hd, hi,
                pool, counters, then=()) -> np.ndarray:
    """Walk rows (q,) in blocks of ``pool.block`` rows on the threads of ``pool``.

    tree: (root, levels, radii, parent_dist, min_id_below, child_ptr, child_idx) of the tree.
    State arrays are as for ``walk_block``, with q rows; a block writes only its own slice
    of them. ``then``: more ``WalkPool.run`` tasks, queued behind the blocks, so a thread
    whose block ends early takes them up. Telemetry is summed over tasks into
    ``counters`` (see ``WalkPool.run``).
    Returns the pairs evaluated per block, (ceil(q / block),) int64.
    """
    q = rows.shape[0]
    block = pool.block

    def walk(start):
        sl = slice(start, min(q, start + block))

        def own(a):  # the block's slice of a state array; empty (unused) arrays stay whole
            return a[sl] if a.shape[0] == q else a

        def task(workspace, task_counters):
            return walk_block(metric, qdata, mode, rows[sl], exclude[sl], limit[sl], *tree,
                              own(best), own(parent), own(pdist), own(hd), own(hi), workspace,
                              task_counters)
        return task

    blocks = [walk(start) for start in range(0, q, block)]
    pairs = pool.run(blocks + list(then), counters)[:len(blocks)]
    return np.asarray(pairs, dtype=np.int64)
