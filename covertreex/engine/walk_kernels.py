"""The blocked tree walk in nopython mode (audit phase nopython_chunk_loop on).

A block of rows walks the tree together: each step evaluates the rows against the
joint frontier as one tile, applies the claims (build scan) or heap offers (kNN),
and expands the frontier. The walk, the tiles and the telemetry stay in Numba
without the GIL; ``covertreex.engine.walk`` holds the Python twin that the phase replaces.
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .frontier_kernels import expand_frontier, pow2
from .specialise import template
from .visit_kernels import claim_bounds, claim_tile, merge_tile_sorted, offer_tile

SCAN = 0
KNN = 1

# The rows of one walk: ids (b,) int64 rows of the query data; exclude (b,) an id each row
# may not return (-1 for none); limit (b,) ids >= limit are not candidates.
Rows = namedtuple("Rows", ["ids", "exclude", "limit"])
# What a walk fills. SCAN: best, parent (b,) int64 and pdist (b,) float64, started at int
# max / any / inf. KNN: the max-heaps hd (b, k) float64 and hi (b, k) int64. Unused arrays
# may be empty.
WalkState = namedtuple("WalkState", ["best", "parent", "pdist", "hd", "hi"])

# walk_block_kernel is a template calling ``tile_kernel``, a metric's tile kernel, bound per
# metric when covertreex.engine.specialise compiles it; this module-level name is never called.
tile_kernel = None


@njit(cache=True, nogil=True)
def initial_active(mode, tree, limit):
    """(b, 1) visit flags of the root: kNN rows whose limit excludes every id skip it."""
    active = np.ones((limit.shape[0], 1), dtype=np.bool_)
    if mode == KNN:
        for r in range(limit.shape[0]):
            active[r, 0] = tree.min_id_below[tree.root] < limit[r]
    return active


@njit(cache=True, nogil=True)
def visit_tile(mode, topk, dist, nodes, active, rows, levels, state):
    """Apply one tile; returns the rows' descent bounds for ``expand_frontier``."""
    if mode == SCAN:
        claim_tile(dist, nodes, active, levels, state.best, state.parent, state.pdist)
        return claim_bounds(state.best)
    if topk:
        offer_tile(dist, nodes, active, rows.exclude, rows.limit, state.hd, state.hi)
    else:
        merge_tile_sorted(dist, nodes, active, rows.exclude, rows.limit, state.hd, state.hi)
    return state.hd[:, 0].copy()


@njit(cache=True, nogil=True)
def tile_thresholds(mode, nodes, tree, slack, hd, b):
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
            col_thr[c] = (max(pow2(tree.levels[g]), pow2(tree.levels[g] - 1) + tree.radii[g])
                          + slack + 1e-9)
        else:
            col_thr[c] = tree.radii[g] + slack + 1e-9
    row_thr = np.zeros(b) if mode == SCAN else hd[:, 0].copy()
    return row_thr, col_thr


@template()
def walk_block_kernel(qdata, tdata, tree, rows, state, mode, topk, slack, workspace, counters):
    """Walk one block of rows (a ``Rows`` of b rows) through ``tree`` (a TreeView) to the
    end, filling ``state`` (a ``WalkState``); returns the pairs evaluated. ``workspace`` is
    the metric's scratch for ``tile_kernel``, owned by the calling thread."""
    nodes = np.full(1, tree.root, dtype=np.int64)
    active = initial_active(mode, tree, rows.limit)
    b = rows.ids.shape[0]
    pairs = 0
    while nodes.shape[0] > 0:
        row_thr, col_thr = tile_thresholds(mode, nodes, tree, slack, state.hd, b)
        dist = tile_kernel(qdata, tdata, rows.ids, nodes, active, row_thr, col_thr, workspace,
                           counters)
        pairs += dist.size
        bound = visit_tile(mode, topk, dist, nodes, active, rows, tree.levels, state)
        nodes, active = expand_frontier(tree, dist, nodes, active, bound, mode == SCAN,
                                        rows.limit, slack)
    return pairs
