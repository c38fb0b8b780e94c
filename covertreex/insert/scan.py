"""Insertion scan drivers: pointwise (one point at a time) and blocked (frontier tiles)."""

from __future__ import annotations

import numba
import numpy as np

from ..engine.layout import make_layout
from ..engine.specialise import specialise
from ..engine.walk import SCAN, Rows, WalkState, walk_blocks
from .scan_kernels import scan_pointwise


def scan_batch(metric, batch, tree, n_nodes, pool, counters, then=()):
    """Lowest claim level, parent and parent distance of each batch point (b,) against the
    n_nodes nodes placed so far (``tree``, a TreeView of the growing arrays): a
    ``WalkState`` whose best, parent (b,) int64 and pdist (b,) float64 hold them. With a ``WalkPool`` ``pool`` the scan is blocked, walking blocks of
    points on the pool's threads, followed by its tasks ``then``; with pool None it is
    pointwise (and ``then`` empty). Tiles add their pairs and time to ``counters``."""
    b = batch.shape[0]
    state = WalkState(np.empty(b, dtype=np.int64), np.empty(b, dtype=np.int64), np.empty(b),
                      np.empty((0, 0)), np.empty((0, 0), dtype=np.int64))
    if pool is None:
        lay = make_layout(metric, tree, n_nodes)
        chunks = min(b, 4 * numba.get_num_threads())
        kernel = specialise(scan_pointwise, metric.kernels)
        kernel(metric.data, lay, batch, metric.prune_slack, chunks, state)
        return state
    no_limit = np.full(b, tree.levels.shape[0], dtype=np.int64)
    state.best[:] = np.iinfo(np.int64).max
    state.pdist[:] = np.inf
    walk_blocks(pool, metric.data, SCAN, tree, Rows(batch, no_limit, no_limit), state, counters,
                then)
    return state
