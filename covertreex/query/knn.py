"""Exact kNN over a fitted tree: pointwise and blocked drivers."""

from __future__ import annotations

import numpy as np
import numba

from ..frontier_kernels import expand_frontier
from ..tree import TreeArrays
from .knn_kernels import knn_pointwise, offer_tile


def sorted_results(hd: np.ndarray, hi: np.ndarray):
    """Heap rows sorted by (distance, id); empty slots become (-1, inf)."""
    order = np.lexsort((hi, hd), axis=-1)
    dist = np.take_along_axis(hd, order, axis=-1)
    idx = np.take_along_axis(hi, order, axis=-1)
    idx[~np.isfinite(dist)] = -1
    return idx, dist


def knn_search(strategy, tree: TreeArrays, metric, qdata, rows, exclude, limit, k, block, counters):
    """k nearest admissible tree nodes for each query row.

    qdata: the metric's query-side data; rows (q,) int64 rows of qdata; exclude (q,)
    an id each row may not return (-1 for none); limit (q,) ids >= limit are not
    candidates. Returns ((idx (q, k) int64, dist (q, k) float64) sorted by (dist, id),
    pairs (q,) int64 distances evaluated per row; the blocked strategy counts whole tiles).
    """
    q = rows.shape[0]
    hd = np.full((q, k), np.inf)
    hi = np.full((q, k), np.iinfo(np.int64).max, dtype=np.int64)
    pairs = np.zeros(q, dtype=np.int64)
    if strategy == "pointwise":
        chunks = min(q, 8 * numba.get_num_threads())
        knn_pointwise(metric.pair, qdata, metric.data, rows, exclude, limit, tree.radii,
                      tree.parent_dist, tree.min_id_below, tree.child_ptr, tree.child_idx, tree.root,
                      metric.prune_slack, chunks, hd, hi, pairs)
        return sorted_results(hd, hi), pairs
    root = np.array([tree.root], dtype=np.int64)
    for lo in range(0, q, block):
        sl = slice(lo, min(q, lo + block))
        brows, bhd, bhi = rows[sl], hd[sl], hi[sl]
        nodes = root
        active = (tree.min_id_below[tree.root] < limit[sl])[:, None].copy()
        while nodes.shape[0]:
            dist = metric.tile(qdata, brows, nodes, counters)
            pairs[sl] += nodes.shape[0]
            offer_tile(dist, nodes, active, exclude[sl], limit[sl], bhd, bhi)
            nodes, active = expand_frontier(
                dist, nodes, active, bhd[:, 0].copy(), False, limit[sl], metric.prune_slack,
                tree.levels, tree.radii, tree.min_id_below, tree.child_ptr, tree.child_idx)
    return sorted_results(hd, hi), pairs
