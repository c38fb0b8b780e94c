"""Blocked tree walk drivers: Numba end to end (phase 6 on) or a Python loop (off), and the
thread pool that walks independent blocks of rows side by side."""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .frontier_kernels import expand_frontier
from .telemetry import WALK_MS
from .threads import default_threads
from .walk_kernels import KNN, SCAN, initial_active, visit_tile

__all__ = ["KNN", "SCAN", "walk_block", "walk_blocks"]


def walk_block(metric, qdata, mode, rows, exclude, limit, root, levels, radii, parent_dist,
               min_id_below, child_ptr, child_idx, best, parent, pdist, hd, hi, workspace,
               counters) -> int:
    """Walk a block of rows (b,) through the tree; returns the pairs evaluated.

    mode SCAN fills best/parent/pdist (b,) (start them at int max / any / inf); mode KNN
    fills the heaps hd, hi (b, k). Unused state arrays may be empty. workspace: the
    calling thread's ``metric.workspace(b)`` (used by the phase-6 tiles).
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


def walk_blocks(metric, qdata, mode, rows, exclude, limit, tree, best, parent, pdist, hd, hi,
                block, workers, counters) -> np.ndarray:
    """Walk rows (q,) in blocks of ``block`` rows, up to ``workers`` blocks at a time.

    tree: (root, levels, radii, parent_dist, min_id_below, child_ptr, child_idx) of the tree.
    State arrays are as for ``walk_block``, with q rows; a block writes only its own slice
    of them. Workers are threads, as with scipy's ``workers=``: the phase-6 walk holds no
    GIL, and BLAS, which the thread guard keeps on one thread, runs one GEMM per core.
    Telemetry is summed over blocks into ``counters``, so its milliseconds are thread time;
    the walks' own wall times go to its WALK_MS slot.
    Returns the pairs evaluated per block, (ceil(q / block),) int64.
    """
    q = rows.shape[0]
    starts = list(range(0, q, block))
    workers = max(1, min(workers or default_threads(), len(starts)))
    local = np.zeros((len(starts), counters.shape[0]))
    timed = counters.shape[0] > 0  # an empty array switches telemetry off
    # One workspace per thread: a block takes a free one and hands it back when done.
    spare = queue.SimpleQueue()
    for _ in range(workers):
        spare.put(metric.workspace(min(block, q)))

    def run(b):
        sl = slice(starts[b], min(q, starts[b] + block))

        def own(a):  # the block's slice of a state array; empty (unused) arrays stay whole
            return a[sl] if a.shape[0] == q else a

        workspace = spare.get()
        start = time.perf_counter()
        try:
            return walk_block(metric, qdata, mode, rows[sl], exclude[sl], limit[sl], *tree,
                              own(best), own(parent), own(pdist), own(hd), own(hi), workspace,
                              local[b])
        finally:
            spare.put(workspace)
            if timed:
                local[b, WALK_MS] += (time.perf_counter() - start) * 1e3

    if workers == 1:
        pairs = [run(b) for b in range(len(starts))]
    else:
        with ThreadPoolExecutor(workers) as pool:
            pairs = list(pool.map(run, range(len(starts))))
    counters += local.sum(axis=0)
    return np.asarray(pairs, dtype=np.int64)
