"""The blocked tree walk in nopython mode (audit phase 6 on).

A block of rows walks the tree together: each step evaluates the rows against the
joint frontier as one tile, applies the claims (build scan) or heap offers (kNN),
and expands the frontier. The walk, the tiles and the telemetry stay in Numba
without the GIL; ``covertreex.engine.walk`` holds the Python twin that phase 6 replaces.
"""

import numpy as np
from numba import njit

from ..insert.scan_kernels import claim_bounds, claim_tile
from .frontier_kernels import expand_frontier, pow2
from ..query.knn_kernels import merge_tile_sorted, offer_tile

SCAN = 0
KNN = 1

# walk_block_kernel is a template calling ``tile_kernel``, a metric's tile kernel, bound per
# metric when covertreex.engine.specialise compiles it; this module-level name is never called.
tile_kernel = None


@njit(cache=True, nogil=True)
def initial_active(mode, root, min_id_below, limit):
    """(b, 1) visit flags of the root: kNN rows whose limit excludes every id skip it."""
    active = np.ones((limit.shape[0], 1), dtype=np.bool_)
    if mode == KNN:
        for r in range(limit.shape[0]):
            active[r, 0] = min_id_below[root] < limit[r]
    return active


@njit(cache=True, nogil=True)
def visit_tile(mode, topk, dist, nodes, active, exclude, limit, levels, best, parent, pdist, hd, hi):
    """Apply one tile; returns the rows' descent bounds for ``expand_frontier``."""
    if mode == SCAN:
        claim_tile(dist, nodes, active, levels, best, parent, pdist)
        return claim_bounds(best)
    if topk:
        offer_tile(dist, nodes, active, exclude, limit, hd, hi)
    else:
        merge_tile_sorted(dist, nodes, active, exclude, limit, hd, hi)
    return hd[:, 0].copy()


@njit(cache=True, nogil=True)
def tile_thresholds(mode, nodes, levels, radii, slack, hd, b):
    """(row_thr (b,), col_thr (f,)): a pair of the next tile whose distance exceeds
    row_thr[a] + col_thr[c] can only be pruned by the walk, so float32 staging may keep an
    approximate value for it. Build scan: no claim (d > 2**level) and no descent
    (d - radius > 2**(level - 1)) at any row bound. kNN: no heap entry (d > the row's
    k-th distance) and no descent (d - radius > it). Both carry the walk's slack, and
    1e-9 for the relative term of ``may_descend``."""
    f = nodes.shape[0]
    col_thr = np.empty(f)
    for c in range(f):
        g = nodes[c]
        if mode == SCAN:
            col_thr[c] = max(pow2(levels[g]), pow2(levels[g] - 1) + radii[g]) + slack + 1e-9
        else:
            col_thr[c] = radii[g] + slack + 1e-9
    row_thr = np.zeros(b) if mode == SCAN else hd[:, 0].copy()
    return row_thr, col_thr


def walk_block_kernel(qdata, tdata, mode, topk, rows, exclude, limit, root, levels, radii,
                      parent_dist, min_id_below, child_ptr, child_idx, slack, best, parent, pdist,
                      hd, hi, workspace, counters):
    """Walk one block of rows (b,) to the end; returns the pairs evaluated. ``workspace``
    is the metric's scratch for ``tile_kernel``, owned by the calling thread."""
    nodes = np.full(1, root, dtype=np.int64)
    active = initial_active(mode, root, min_id_below, limit)
    pairs = 0
    while nodes.shape[0] > 0:
        row_thr, col_thr = tile_thresholds(mode, nodes, levels, radii, slack, hd, rows.shape[0])
        dist = tile_kernel(qdata, tdata, rows, nodes, active, row_thr, col_thr, workspace, counters)
        pairs += dist.size
        bound = visit_tile(mode, topk, dist, nodes, active, exclude, limit, levels, best, parent,
                           pdist, hd, hi)
        nodes, active = expand_frontier(dist, nodes, active, bound, mode == SCAN, limit, slack,
                                        levels, radii, parent_dist, min_id_below, child_ptr, child_idx)
    return pairs
