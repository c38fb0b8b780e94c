"""Exact kNN over a fitted tree: pointwise and blocked drivers."""

from __future__ import annotations

import numpy as np
import numba

from ..engine.layout import SUBTREE_SCAN_MAX
from ..threads import default_threads
from ..tree import TreeArrays
from ..engine.walk import KNN, WalkPool, walk_blocks


def sorted_results(hd: np.ndarray, hi: np.ndarray):
    """Heap rows sorted by (distance, id); empty slots become (-1, inf)."""
    order = np.lexsort((hi, hd), axis=-1)
    dist = np.take_along_axis(hd, order, axis=-1)
    idx = np.take_along_axis(hi, order, axis=-1)
    idx[~np.isfinite(dist)] = -1
    return idx, dist


def knn_search(strategy, tree: TreeArrays, layout, metric, qdata, rows, exclude, limit, k, block,
               workers, counters):
    """k nearest admissible tree nodes for each query row.

    layout: the tree's ``Layout`` with its depth-first runs (pointwise strategy) or None;
    qdata: the metric's query-side data; rows (q,) int64 rows of qdata; exclude (q,)
    an id each row may not return (-1 for none); limit (q,) ids >= limit are not
    candidates; the blocked strategy walks blocks of ``block`` rows on ``workers`` threads.
    Returns ((idx (q, k) int64, dist (q, k) float64) sorted by (dist, id),
    pairs (q,) int64 distances evaluated; the blocked strategy counts whole tiles, per block,
    on the block's first row).
    """
    q = rows.shape[0]
    hd = np.full((q, k), np.inf)
    hi = np.full((q, k), np.iinfo(np.int64).max, dtype=np.int64)
    pairs = np.zeros(q, dtype=np.int64)
    if strategy == "pointwise":
        chunks = min(q, 8 * numba.get_num_threads())
        metric.kernels.knn_pointwise(qdata, layout.data, rows, exclude, limit, layout.order,
                                     layout.child_start, layout.child_count, layout.radii,
                                     layout.min_id_below,
                                     layout.runs.start, layout.runs.size, layout.runs.ids,
                                     layout.runs.data, SUBTREE_SCAN_MAX, metric.prune_slack,
                                     chunks, hd, hi, pairs)
        return sorted_results(hd, hi), pairs
    none = np.empty(0, dtype=np.int64)
    arrays = (tree.root, tree.levels, tree.radii, tree.parent_dist, tree.min_id_below,
              tree.child_ptr, tree.child_idx)
    # No more threads (and workspaces) than blocks: a short query run has one or two.
    workers = min(workers or default_threads(), -(-q // block))
    with WalkPool(metric, min(block, q), workers) as pool:
        pairs[::block] = walk_blocks(metric, qdata, KNN, rows, exclude, limit, arrays, none,
                                     none, none.astype(np.float64), hd, hi, pool, counters)
    return sorted_results(hd, hi), pairs
