"""Insertion scan drivers: pointwise (one point at a time) and blocked (frontier tiles)."""

from __future__ import annotations

import numpy as np
import numba

from ..engine.layout import make_layout
from ..engine.walk import SCAN, walk_blocks


def scan_batch(strategy, metric, batch, levels, radii, parent_dist, min_id_below, child_ptr,
               child_idx, root, n_nodes, pool, counters, then=()):
    """Lowest claim level, parent and parent distance of each batch point: (b,) int64, int64,
    float64. The tree holds n_nodes nodes; the blocked strategy walks blocks of points on
    the ``WalkPool`` pool, followed by its tasks ``then`` (pointwise: pool is None and then
    empty); tiles add their pairs and time to ``counters``."""
    b = batch.shape[0]
    best = np.empty(b, dtype=np.int64)
    parent = np.empty(b, dtype=np.int64)
    pdist = np.empty(b)
    if strategy == "pointwise":
        lay = make_layout(metric, root, child_ptr, child_idx, n_nodes, levels, radii, min_id_below)
        chunks = min(b, 4 * numba.get_num_threads())
        metric.kernels.scan_pointwise(metric.data, lay.data, batch, lay.order, lay.child_start,
                                      lay.child_count, lay.levels, lay.radii, metric.prune_slack,
                                      chunks, best, parent, pdist)
        return best, parent, pdist
    no_limit = np.full(b, levels.shape[0], dtype=np.int64)
    best[:] = np.iinfo(np.int64).max
    pdist[:] = np.inf
    empty_heap = np.empty((0, 0))
    tree = (root, levels, radii, parent_dist, min_id_below, child_ptr, child_idx)
    walk_blocks(metric, metric.data, SCAN, batch, no_limit, no_limit, tree, best, parent, pdist,
                empty_heap, empty_heap.astype(np.int64), pool, counters, then)
    return best, parent, pdist
