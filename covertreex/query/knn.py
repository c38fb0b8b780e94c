"""Exact kNN over a fitted tree: pointwise and blocked drivers."""

from __future__ import annotations

import numba
import numpy as np

from ..engine.layout import SUBTREE_SCAN_MAX
from ..engine.specialise import specialise
from ..engine.walk import KNN, WalkPool, WalkState, walk_blocks
from ..threads import default_threads
from .knn_kernels import knn_pointwise


def sorted_results(hd: np.ndarray, hi: np.ndarray):
    """Heap rows sorted by (distance, id); empty slots become (-1, inf)."""
    order = np.lexsort((hi, hd), axis=-1)
    dist = np.take_along_axis(hd, order, axis=-1)
    idx = np.take_along_axis(hi, order, axis=-1)
    idx[~np.isfinite(dist)] = -1
    return idx, dist


def knn_search(plan, tree, layout, metric, qdata, rows, k, counters):
    """k nearest admissible tree nodes for each query row.

    plan: the ``WalkPlan``; tree: the fitted ``TreeView``; layout: the tree's ``Layout``
    with its depth-first runs (pointwise traversal) or None; qdata: the metric's query-side
    data; rows: a ``Rows`` of q rows of qdata. The blocked traversal walks blocks of
    ``plan.block`` rows on ``plan.workers`` threads.
    Returns ((idx (q, k) int64, dist (q, k) float64) sorted by (dist, id),
    pairs (q,) int64 distances evaluated; the blocked traversal counts whole tiles, per
    block, on the block's first row).
    """
    q = rows.ids.shape[0]
    hd = np.full((q, k), np.inf)
    hi = np.full((q, k), np.iinfo(np.int64).max, dtype=np.int64)
    pairs = np.zeros(q, dtype=np.int64)
    if plan.traversal == "pointwise":
        chunks = min(q, 8 * numba.get_num_threads())
        kernel = specialise(knn_pointwise, metric.kernels)
        kernel(qdata, layout, rows, SUBTREE_SCAN_MAX, metric.prune_slack, chunks, hd, hi, pairs)
        return sorted_results(hd, hi), pairs
    none = np.empty(0, dtype=np.int64)
    state = WalkState(none, none, none.astype(np.float64), hd, hi)
    block = min(plan.block, q)
    # No more threads (and workspaces) than blocks: a short query run has one or two.
    workers = min(plan.workers or default_threads(), -(-q // block))
    with WalkPool(metric, plan, block, workers) as pool:
        pairs[::block] = walk_blocks(pool, qdata, KNN, tree, rows, state, counters)
    return sorted_results(hd, hi), pairs
