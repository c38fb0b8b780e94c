"""Blocked tree walk drivers: Numba end to end (``WalkPlan.nopython``) or a Python loop, and
the thread pool that walks independent blocks of rows side by side."""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np

from ..telemetry import WALK_MS
from ..threads import default_threads
from .frontier_kernels import expand_frontier
from .specialise import specialise
from .walk_kernels import (KNN, SCAN, Rows, WalkState, initial_active, scan_block_kernel,
                           seed_block_kernel, visit_tile, walk_block_kernel)

__all__ = ["KNN", "SCAN", "Rows", "WalkPool", "WalkState", "walk_block", "walk_blocks"]


def walk_block(pool, qdata, mode, tree, rows, state, workspace, counters, seeds=None,
               scan=False) -> int:
    """Walk a block of rows (a ``Rows`` of b rows) through ``tree`` (a TreeView) with the
    metric and plan of ``pool``; fills ``state`` (a ``WalkState``: mode SCAN fills
    best/parent/pdist, mode KNN the heaps hd, hi) and returns the pairs evaluated.
    workspace: a ``metric.workspace`` of at least b rows that no other thread uses meanwhile.
    seeds: None, or for mode KNN (b, s) int64 ids each row's empty heap is first filled
    with (``seed_block_kernel``), so that the walk starts with a near-final k-th distance.
    scan: for mode KNN, answer the block by brute force over every id below its largest limit
    (``scan_block_kernel``) instead of walking the tree; its seeds are then not used.
    """
    metric, plan = pool.metric, pool.plan
    if scan:
        kernel = specialise(scan_block_kernel, metric.kernels)
        return kernel(qdata, metric.data, rows, state.hd, state.hi, workspace, counters)
    pairs = 0
    if seeds is not None and seeds.shape[1] > 0:
        seed = specialise(seed_block_kernel, metric.kernels)
        pairs += seed(qdata, metric.data, rows.ids, seeds, state.hd, state.hi, workspace,
                      counters)
    if plan.nopython:
        kernel = specialise(walk_block_kernel, metric.kernels)
        return pairs + kernel(qdata, metric.data, tree, rows, state, mode, plan.topk,
                              metric.prune_slack, plan.split if mode == KNN else 0, workspace,
                              counters)
    # Pre-audit shape: Python drives the loop and calls the tile provider per step.
    nodes = np.full(1, tree.root, dtype=np.int64)
    active = initial_active(mode, tree, rows.limit)
    while nodes.shape[0]:
        dist = metric.tile(qdata, rows.ids, nodes, counters)
        pairs += dist.size
        bound = visit_tile(mode, plan.topk, dist, nodes, active, rows, tree.levels, state)
        nodes, active = expand_frontier(tree, dist, nodes, active, bound, mode == SCAN,
                                        rows.limit, metric.prune_slack)
    return pairs


class WalkPool:
    """The threads and tile workspaces of the blocked walks of one build or query run.

    ``plan.workers`` threads (default: the cores available), as with scipy's ``workers=``:
    the nopython walk holds no GIL, and BLAS, which the thread guard keeps on one thread,
    runs one GEMM per core. One ``metric.workspace(block)`` per thread, allocated here once
    and reused by every task, so a build does not fault in fresh scratch pages every batch.
    ``workers`` overrides the plan's count. Use it as a context manager; it shuts its
    threads down on exit.
    """

    def __init__(self, metric, plan, block: int | None = None, workers: int | None = None):
        self.metric = metric
        self.plan = plan
        self.block = int(block or plan.block)
        self.workers = max(1, int(workers or plan.workers or default_threads()))
        self._spare = queue.SimpleQueue()
        for _ in range(self.workers):
            self._spare.put(metric.workspace(self.block))
        self._executor = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def __enter__(self) -> "WalkPool":
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.shutdown()

    def run(self, tasks, counters, on_done=None):
        """Run every ``task(workspace, task_counters)`` on the pool, in order of submission,
        each with a free workspace and a telemetry row of its own; the rows are summed into
        ``counters`` (an empty array switches telemetry off) and each task's wall time goes
        to their WALK_MS slot, so telemetry milliseconds are thread time. on_done: None or
        callable(t), called in this thread as task t completes, in order of completion.
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
            results = []
            for t in range(len(tasks)):
                results.append(run(t))
                if on_done is not None:
                    on_done(t)
        elif on_done is None:
            results = list(self._executor.map(run, range(len(tasks))))
        else:
            results = self._reporting(run, len(tasks), on_done)
        counters += local.sum(axis=0)
        return results

    def _reporting(self, run, count, on_done):
        """``run(t)`` for t < count on the threads, results in order, with on_done(t) called
        here as each completes; an error cancels the tasks not yet started, as map does."""
        futures = [self._executor.submit(run, t) for t in range(count)]
        index = {future: t for t, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                future.result()
                on_done(index[future])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return [future.result() for future in futures]


def walk_blocks(pool, qdata, mode, tree, rows, state, counters, then=(),
                progress=None, seeds=None, scan_limit=0) -> np.ndarray:
    """Walk rows (a ``Rows`` of q rows) in blocks of ``pool.block`` rows on the threads of
    ``pool``. ``state`` is a ``WalkState`` of q rows (unused arrays empty); a block writes
    only its own slice of it. ``then``: more ``WalkPool.run`` tasks, queued behind the
    blocks, so a thread whose block ends early takes them up. Telemetry is summed over tasks
    into ``counters`` (see ``WalkPool.run``). progress: None or callable(done, q), called in
    this thread with the rows of the blocks completed so far as each block completes.
    seeds: None or (q, s) int64 seed ids of the rows, for mode KNN (see ``walk_block``).
    scan_limit: for mode KNN, a block whose rows all have limits of at most this is
    answered by brute force (``walk_block``'s scan) instead of a walk.
    Returns the pairs evaluated per block, (ceil(q / block),) int64.
    """
    q = rows.ids.shape[0]
    block = pool.block

    def walk(start):
        sl = slice(start, min(q, start + block))
        # The block's slice of each array; empty (unused) state arrays stay whole.
        own_rows = Rows(*(a[sl] for a in rows))
        own_state = WalkState(*(a[sl] if a.shape[0] == q else a for a in state))
        own_seeds = None if seeds is None else seeds[sl]
        scan = mode == KNN and own_rows.limit.max() <= scan_limit

        def task(workspace, task_counters):
            return walk_block(pool, qdata, mode, tree, own_rows, own_state, workspace,
                              task_counters, own_seeds, scan)
        return task

    blocks = [walk(start) for start in range(0, q, block)]
    on_done = None
    if progress is not None:
        done = 0

        def on_done(t):
            nonlocal done
            if t < len(blocks):
                done += min(q, (t + 1) * block) - t * block
                progress(done, q)
    pairs = pool.run(blocks + list(then), counters, on_done)[:len(blocks)]
    return np.asarray(pairs, dtype=np.int64)
