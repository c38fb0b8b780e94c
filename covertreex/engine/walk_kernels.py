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
from .visit_kernels import (claim_bounds, claim_tile, heap_offer, merge_tile_sorted, offer_scan,
                            offer_tile)

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


@template()
def seed_block_kernel(qdata, tdata, ids, seeds, hd, hi, workspace, counters):
    """Offer each row a of a block, ids (b,) int64, its exact distances to the points
    seeds[a] (b, s) int64 (admissible and distinct ids, then -1 for none) in one tile a row,
    before the walk (covertreex.query.seeds); hd, hi (b, k): the rows' empty heaps. Returns
    the pairs evaluated. Seed tiles are exact (thresholds of +inf): their values stay in the
    heaps."""
    every = np.zeros((0, 0), dtype=np.bool_)
    row_thr = np.full(1, np.inf)
    pairs = 0
    for a in range(ids.shape[0]):
        m = 0
        while m < seeds.shape[1] and seeds[a, m] >= 0:
            m += 1
        if m == 0:
            continue
        cols = seeds[a, :m]
        dist = tile_kernel(qdata, tdata, ids[a:a + 1], cols, every, row_thr, np.full(m, np.inf),
                           workspace, counters)
        for c in range(m):
            heap_offer(hd, hi, a, dist[0, c], cols[c])
        pairs += m
    return pairs


# Columns per tile of ``scan_block_kernel``: a (256, 2048) float64 tile is 4 MiB, and the tile
# kernel's per-call work (the row split, the output's allocation) is spread over that many pairs.
SCAN_CHUNK = 2048


@template()
def scan_block_kernel(qdata, tdata, rows, hd, hi, workspace, counters):
    """Answer a block of kNN rows (a ``Rows`` of b rows) by brute force: every id below the
    block's largest limit, in dense tiles of SCAN_CHUNK consecutive ids, offered to the rows'
    heaps hd, hi (b, k), which apply each row's own limit and exclusion. Returns the pairs
    evaluated. The tiles are exact (thresholds of +inf), as in ``seed_block_kernel``."""
    b = rows.ids.shape[0]
    top = rows.limit.max()
    every = np.zeros((0, 0), dtype=np.bool_)
    row_thr = np.full(b, np.inf)
    col_thr = np.full(SCAN_CHUNK, np.inf)
    pairs = 0
    for c0 in range(0, top, SCAN_CHUNK):
        cols = np.arange(c0, min(top, c0 + SCAN_CHUNK))
        f = cols.shape[0]
        dist = tile_kernel(qdata, tdata, rows.ids, cols, every, row_thr, col_thr[:f], workspace,
                           counters)
        offer_scan(dist, c0, rows.exclude, rows.limit, hd, hi)
        pairs += b * f
    return pairs


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


# A part splits when its halves' frontiers add up to at most this many times its own: at
# least 5 % fewer pairs. Each half's tile is a smaller GEMM, so a split that saves almost
# nothing would cost more than it saves (perf/README.md, "Coherent query blocks").
SPLIT_RATIO = 1.9


@njit(cache=True, nogil=True)
def used_columns(active, lo, hi):
    """(f,) bool: the frontier columns of active (b, f) that some row in [lo, hi) visits."""
    used = np.zeros(active.shape[1], dtype=np.bool_)
    for r in range(lo, hi):
        for c in range(active.shape[1]):
            used[c] |= active[r, c]
    return used


@njit(cache=True, nogil=True)
def half_frontier(nodes, active, used, lo, hi):
    """The frontier (nodes, active) of rows [lo, hi) of active (b, f), whose used columns
    are ``used`` (f,) bool."""
    cols = np.flatnonzero(used)
    return nodes[cols], np.ascontiguousarray(active[lo:hi][:, cols])


@template()
def walk_block_kernel(qdata, tdata, tree, rows, state, mode, topk, slack, split, workspace,
                      counters):
    """Walk one block of rows (a ``Rows`` of b rows) through ``tree`` (a TreeView) to the
    end, filling ``state`` (a ``WalkState``); returns the pairs evaluated. ``workspace`` is
    the metric's scratch for ``tile_kernel``, owned by the calling thread. split > 0: a part
    of at least 2 * split rows whose halves would each visit much less than the part's whole
    frontier walks on as two halves, so rows far apart in the metric stop paying for one
    another's frontier; rows should come in an order that keeps halves coherent. Every
    row's flags are its own, so a part visits exactly what its rows would visit alone."""
    b = rows.ids.shape[0]
    stack = [(0, b, np.full(1, tree.root, dtype=np.int64), initial_active(mode, tree, rows.limit))]
    pairs = 0
    while len(stack) > 0:
        lo, hi, nodes, active = stack.pop()
        if nodes.shape[0] == 0:
            continue
        if split > 0 and hi - lo >= 2 * split:
            mid = (hi - lo) // 2
            used_lo = used_columns(active, 0, mid)
            used_hi = used_columns(active, mid, hi - lo)
            if used_lo.sum() + used_hi.sum() <= SPLIT_RATIO * nodes.shape[0]:
                n_hi, a_hi = half_frontier(nodes, active, used_hi, mid, hi - lo)
                stack.append((lo + mid, hi, n_hi, a_hi))
                n_lo, a_lo = half_frontier(nodes, active, used_lo, 0, mid)
                stack.append((lo, lo + mid, n_lo, a_lo))  # walked next: depth first
                continue
        part = Rows(rows.ids[lo:hi], rows.exclude[lo:hi], rows.limit[lo:hi])
        own = WalkState(state.best[lo:hi], state.parent[lo:hi], state.pdist[lo:hi],
                        state.hd[lo:hi], state.hi[lo:hi])
        row_thr, col_thr = tile_thresholds(mode, nodes, tree, slack, own.hd, hi - lo)
        dist = tile_kernel(qdata, tdata, part.ids, nodes, active, row_thr, col_thr,
                           workspace, counters)
        pairs += dist.size
        bound = visit_tile(mode, topk, dist, nodes, active, part, tree.levels, own)
        nodes, active = expand_frontier(tree, dist, nodes, active, bound, mode == SCAN,
                                        part.limit, slack)
        stack.append((lo, hi, nodes, active))
    return pairs
