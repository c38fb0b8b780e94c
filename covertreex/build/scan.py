"""Insertion scan drivers: pointwise (one point at a time) and blocked (frontier tiles)."""

from __future__ import annotations

import numpy as np
import numba

from ..frontier_kernels import expand_frontier
from .scan_kernels import claim_bounds, claim_tile, scan_pointwise


def scan_batch(strategy, metric, batch, levels, radii, parent_dist, min_id_below, child_ptr,
               child_idx, root, block, counters):
    """Lowest claim level, parent and parent distance of each batch point: (b,) int64, int64,
    float64. Tiles add their pairs and time to ``counters``."""
    b = batch.shape[0]
    best = np.empty(b, dtype=np.int64)
    parent = np.empty(b, dtype=np.int64)
    pdist = np.empty(b)
    if strategy == "pointwise":
        chunks = min(b, 4 * numba.get_num_threads())
        scan_pointwise(metric.pair, metric.data, metric.data, batch, levels, radii, parent_dist,
                       child_ptr, child_idx, root, metric.prune_slack, chunks, best, parent, pdist)
        return best, parent, pdist
    no_limit = np.full(min(b, block), levels.shape[0], dtype=np.int64)
    for lo in range(0, b, block):
        rows = batch[lo:lo + block]
        sl = slice(lo, lo + rows.shape[0])
        nodes = np.array([root], dtype=np.int64)
        active = np.ones((rows.shape[0], 1), dtype=np.bool_)
        dist = metric.tile(metric.data, rows, nodes, counters)
        best[sl] = np.iinfo(np.int64).max
        pdist[sl] = np.inf
        while True:
            claim_tile(dist, nodes, active, levels, best[sl], parent[sl], pdist[sl])
            nodes, active = expand_frontier(
                dist, nodes, active, claim_bounds(best[sl]), True, no_limit[: rows.shape[0]],
                metric.prune_slack, levels, radii, min_id_below, child_ptr, child_idx)
            if nodes.shape[0] == 0:
                break
            dist = metric.tile(metric.data, rows, nodes, counters)
    return best, parent, pdist
