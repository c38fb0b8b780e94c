"""Numba kernels shared by every tree traversal (build scans and kNN queries).

A traversal descends into the subtree of node g, seen at distance dg, only when its
lower bound dg - radius[g] can still beat the row's bound. ``may_descend`` loosens
that test by the metric's slack so that rounding in computed distances never prunes
a subtree the exact distances would keep.
"""

import math

import numpy as np
from numba import njit

from ..tree import FLOOR_LEVEL


@njit(nogil=True, inline="always")
def level_of_distance(d):
    """Smallest integer l with d <= 2**l, clamped to FLOOR_LEVEL + 1 (so d = 0 maps there)."""
    if d <= 0.0:
        return FLOOR_LEVEL + 1
    mant, expo = math.frexp(d)
    lvl = expo - 1 if mant == 0.5 else expo
    return max(lvl, FLOOR_LEVEL + 1)


# 2.0**l for l in [-_POW2_SPAN, _POW2_SPAN]: beyond float64's exponent range both ends
# saturate (0.0 and inf). The scans take several powers of two per child: a table read
# instead of math.ldexp, a libm call.
_POW2_SPAN = 1100
with np.errstate(over="ignore"):
    _POW2 = np.ldexp(1.0, np.arange(-_POW2_SPAN, _POW2_SPAN + 1))


@njit(nogil=True, inline="always")
def pow2(level):
    """2.0**level for any int64 level; the root's sentinel level gives inf."""
    return _POW2[max(-_POW2_SPAN, min(level, _POW2_SPAN)) + _POW2_SPAN]


@njit(nogil=True, inline="always")
def may_descend(dg, rg, bound, slack):
    return dg - rg <= bound + slack + 1e-10 * (dg + rg + bound)


@njit(nogil=True, inline="always")
def child_needed_capped(gap, radius, bound, level_cap, cap_self, cap_below, slack):
    """Whether a row must evaluate a child, knowing only gap = |d(row, c) - d(c, g)| <= d(row, g).

    kNN (no level cap): g or a descendant can enter if gap - radius(g) <= bound.
    Build scan (level cap): g itself can claim if gap <= min(bound, cap_self = 2**level(g)),
    a descendant if gap - radius(g) <= min(bound, cap_below = 2**(level(g) - 1)).
    """
    if not level_cap:
        return may_descend(gap, radius, bound, slack)
    return (may_descend(gap, 0.0, min(bound, cap_self), slack)
            or may_descend(gap, radius, min(bound, cap_below), slack))


# Side of the square blocks in which expand_frontier transposes its flags, so that both the
# reads and the writes of a block stay in cache.
_TRANSPOSE_BLOCK = 64


@njit(cache=True, nogil=True)
def expand_frontier(tree, dist, nodes, active, row_bound, level_cap, row_limit, slack):
    """Children of the frontier of ``tree`` (a TreeView) that some row must visit next.

    dist, active: (b, f) distances and visit flags of rows against frontier ``nodes`` (f,).
    A row descends into node g when ``may_descend`` holds for bound
    min(row_bound[r], 2**(level[g] - 1) if level_cap) and min_id_below[g] < row_limit[r];
    it then needs child h unless ``child_needed_capped`` rules it out, and a child no row
    needs leaves the frontier. Returns (next_nodes (f2,) int64, next_active (b, f2) bool).
    """
    levels, radii, parent_dist = tree.levels, tree.radii, tree.parent_dist
    min_id_below, child_ptr, child_idx = tree.min_id_below, tree.child_ptr, tree.child_idx
    b, f = dist.shape
    total = 0
    for c in range(f):
        total += child_ptr[nodes[c] + 1] - child_ptr[nodes[c]]
    # Pass 1, child by child: need[t] holds child t's flags for all rows, so the inner loop
    # over rows writes one contiguous run; row by row, each flag landed in another cache line.
    # A child is tested against the rows that descend into its parent only, packed first: in
    # a part's deep levels few of its rows descend into a given node.
    need = np.empty((total, b), dtype=np.bool_)
    kid_used = np.zeros(total, dtype=np.bool_)
    kid_ids = np.empty(total, dtype=np.int64)
    # The rows that descend into the current parent, packed with what their child tests read.
    d_row = np.empty(b, dtype=np.int64)
    d_dist = np.empty(b)
    d_bound = np.empty(b)
    d_limit = np.empty(b, dtype=np.int64)
    base = 0
    for c in range(f):
        g = nodes[c]
        lo = child_ptr[g]
        nkids = child_ptr[g + 1] - lo
        if nkids == 0:  # most of a wide frontier: leaves, whose rows need no test
            continue
        for t in range(nkids):
            kid_ids[base + t] = child_idx[lo + t]
        cap = pow2(levels[g] - 1) if level_cap else np.inf
        below, radius_g = min_id_below[g], radii[g]
        nd = 0
        for r in range(b):
            if (active[r, c] and below < row_limit[r]
                    and may_descend(dist[r, c], radius_g, min(row_bound[r], cap), slack)):
                d_row[nd] = r
                d_dist[nd] = dist[r, c]
                d_bound[nd] = row_bound[r]
                d_limit[nd] = row_limit[r]
                nd += 1
        if nd > 0:
            for t in range(nkids):
                h = kid_ids[base + t]
                # The child's caps and attributes do not depend on the row: locals, which
                # the compiler cannot hoist itself past the stores into need.
                cap_self, cap_below = pow2(levels[h]), pow2(levels[h] - 1)
                to_parent, radius, lowest = parent_dist[h], radii[h], min_id_below[h]
                need[base + t, :] = False
                used = False
                for e in range(nd):
                    # The gap is the difference of two distances that can be far larger than
                    # it, and its rounding scales with them, not with the gap: a bound as
                    # tight as a seeded heap's would otherwise drop a child at exactly the
                    # k-th distance, and with it the lower id of a tie.
                    flag = lowest < d_limit[e] and child_needed_capped(
                        abs(d_dist[e] - to_parent), radius, d_bound[e], level_cap,
                        cap_self, cap_below, slack + 1e-10 * (d_dist[e] + to_parent))
                    need[base + t, d_row[e]] = flag
                    used = used or flag
                kid_used[base + t] = used
        base += nkids
    # Pass 2: keep the children some row needs, transposing their flags block by block.
    keep = np.flatnonzero(kid_used)
    f2 = keep.shape[0]
    next_nodes = kid_ids[keep]
    next_active = np.empty((b, f2), dtype=np.bool_)
    for p0 in range(0, f2, _TRANSPOSE_BLOCK):
        p1 = min(f2, p0 + _TRANSPOSE_BLOCK)
        for r0 in range(0, b, _TRANSPOSE_BLOCK):
            for r in range(r0, min(b, r0 + _TRANSPOSE_BLOCK)):
                for p in range(p0, p1):
                    next_active[r, p] = need[keep[p], r]
    return next_nodes, next_active
