"""Blocked tree walk driver: Numba end to end (phase 6 on) or a Python loop (off)."""

from __future__ import annotations

import numpy as np

from .frontier_kernels import expand_frontier
from .walk_kernels import KNN, SCAN, initial_active, visit_tile, walk_block_kernel

__all__ = ["KNN", "SCAN", "walk_block"]


def walk_block(metric, qdata, mode, rows, exclude, limit, root, levels, radii, parent_dist,
               min_id_below, child_ptr, child_idx, best, parent, pdist, hd, hi, counters) -> int:
    """Walk a block of rows (b,) through the tree; returns the pairs evaluated.

    mode SCAN fills best/parent/pdist (b,) (start them at int max / any / inf); mode KNN
    fills the heaps hd, hi (b, k). Unused state arrays may be empty.
    """
    topk = bool(metric.phases.topk_selection)
    if metric.phases.nopython_chunk_loop:
        return walk_block_kernel(metric.tile_kernel, qdata, metric.data, mode, topk, rows, exclude,
                                 limit, root, levels, radii, parent_dist, min_id_below, child_ptr,
                                 child_idx, metric.prune_slack, best, parent, pdist, hd, hi,
                                 counters)
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
