"""Exact kNN over a fitted tree: pointwise and blocked drivers."""

from __future__ import annotations

import time

import numba
import numpy as np

from ..engine.layout import SUBTREE_SCAN_MAX
from ..engine.specialise import specialise
from ..engine.walk import KNN, Rows, WalkPool, WalkState, walk_blocks
from ..threads import default_threads
from .knn_kernels import knn_pointwise

# With a progress callback the pointwise traversal walks its rows in slices, one parallel
# kernel run each, the callback running between them in the calling thread. A slice is sized
# to last about SLICE_SECONDS at the pace of the one before (growing at most SLICE_GROWTH
# times): often enough for a progress line, rarely enough that the joins cost nothing.
SLICE_SECONDS = 0.25
SLICE_GROWTH = 4


def sorted_results(hd: np.ndarray, hi: np.ndarray):
    """Heap rows sorted by (distance, id); empty slots become (-1, inf)."""
    order = np.lexsort((hi, hd), axis=-1)
    dist = np.take_along_axis(hd, order, axis=-1)
    idx = np.take_along_axis(hi, order, axis=-1)
    idx[~np.isfinite(dist)] = -1
    return idx, dist


def knn_search(plan, tree, layout, metric, qdata, rows, k, counters, progress=None, seeds=None,
               scan_limit=0):
    """k nearest admissible tree nodes for each query row.

    plan: the ``WalkPlan``; tree: the fitted ``TreeView``; layout: the tree's ``Layout``
    with its depth-first runs (pointwise traversal) or None; qdata: the metric's query-side
    data; rows: a ``Rows`` of q rows of qdata. The blocked traversal walks blocks of
    ``plan.block`` rows on ``plan.workers`` threads. progress: None or callable(done, q),
    called in this thread as blocks complete (blocked) or after each slice of rows
    (pointwise, see ``pointwise_slices``); the last call has done == q. seeds: None or
    (q, s) int64 ids that the blocked traversal fills each row's heap with first
    (covertreex.query.seeds; admissible and distinct per row, then -1). scan_limit: the
    blocked traversal answers a block whose rows all have limits of at most this by brute
    force instead of a walk (``covertreex.engine.walk.walk_blocks``).
    Returns ((idx (q, k) int64, dist (q, k) float64) sorted by (dist, id),
    pairs (q,) int64 distances evaluated; the blocked traversal counts whole tiles, per
    block, on the block's first row).
    """
    q = rows.ids.shape[0]
    hd = np.full((q, k), np.inf)
    hi = np.full((q, k), np.iinfo(np.int64).max, dtype=np.int64)
    pairs = np.zeros(q, dtype=np.int64)
    if plan.traversal == "pointwise":
        kernel = specialise(knn_pointwise, metric.kernels)
        if progress is None:
            chunks = min(q, 8 * numba.get_num_threads())
            kernel(qdata, layout, rows, SUBTREE_SCAN_MAX, metric.prune_slack, chunks, hd, hi,
                   pairs)
        else:
            pointwise_slices(kernel, qdata, layout, rows, metric.prune_slack, (hd, hi, pairs),
                             progress)
        return sorted_results(hd, hi), pairs
    none = np.empty(0, dtype=np.int64)
    state = WalkState(none, none, none.astype(np.float64), hd, hi)
    block = min(plan.block, q)
    # No more threads (and workspaces) than blocks: a short query run has one or two.
    workers = min(plan.workers or default_threads(), -(-q // block))
    with WalkPool(metric, plan, block, workers) as pool:
        pairs[::block] = walk_blocks(pool, qdata, KNN, tree, rows, state, counters,
                                     progress=progress, seeds=seeds, scan_limit=scan_limit)
    return sorted_results(hd, hi), pairs


def pointwise_slices(kernel, qdata, layout, rows, slack, out, progress) -> None:
    """The pointwise ``kernel`` over successive slices of ``rows`` (a ``Rows`` of q rows), each
    filling its rows of out = (hd, hi, pairs), with progress(done, q) called after each slice.
    Rows are independent, so every row gets the result of a single run over all rows."""
    q = rows.ids.shape[0]
    chunks = 8 * numba.get_num_threads()
    a, step = 0, min(q, chunks)
    while a < q:
        b = min(q, a + step)
        start = time.perf_counter()
        kernel(qdata, layout, Rows(*(x[a:b] for x in rows)), SUBTREE_SCAN_MAX, slack,
               min(b - a, chunks), *(x[a:b] for x in out))
        pace = (b - a) / max(time.perf_counter() - start, 1e-9)
        progress(b, q)
        step = max(chunks, min(SLICE_GROWTH * (b - a), int(pace * SLICE_SECONDS)))
        a = b
