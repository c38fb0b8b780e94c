"""Numba kernels shared by every tree traversal (build scans and kNN queries).

A traversal descends into the subtree of node g, seen at distance dg, only when its
lower bound dg - radius[g] can still beat the row's bound. ``may_descend`` loosens
that test by the metric's slack so that rounding in computed distances never prunes
a subtree the exact distances would keep.
"""

import math

import numpy as np
from numba import njit

from .tree import FLOOR_LEVEL


@njit(nogil=True, inline="always")
def level_of_distance(d):
    """Smallest integer l with d <= 2**l, clamped to FLOOR_LEVEL + 1 (so d = 0 maps there)."""
    if d <= 0.0:
        return FLOOR_LEVEL + 1
    mant, expo = math.frexp(d)
    lvl = expo - 1 if mant == 0.5 else expo
    return max(lvl, FLOOR_LEVEL + 1)


@njit(nogil=True, inline="always")
def pow2(level):
    """2.0**level for any int64 level; the root's sentinel level gives inf, not an
    overflowed exponent (math.ldexp takes a C int)."""
    return math.ldexp(1.0, max(-1100, min(level, 1100)))


@njit(nogil=True, inline="always")
def may_descend(dg, rg, bound, slack):
    return dg - rg <= bound + slack + 1e-10 * (dg + rg + bound)


@njit(nogil=True)
def expand_frontier(dist, nodes, active, row_bound, level_cap, row_limit, slack,
                    levels, radii, min_id_below, child_ptr, child_idx):
    """Children of the frontier that some row must visit next.

    dist, active: (b, f) distances and visit flags of rows against frontier ``nodes`` (f,).
    A row descends into node g when ``may_descend`` holds for bound
    min(row_bound[r], 2**(level[g] - 1) if level_cap) and min_id_below[g] < row_limit[r].
    Returns (next_nodes (f2,) int64, next_active (b, f2) bool).
    """
    b, f = dist.shape
    descend = np.zeros((b, f), dtype=np.bool_)
    count = 0
    for c in range(f):
        g = nodes[c]
        nkids = child_ptr[g + 1] - child_ptr[g]
        if nkids == 0:
            continue
        cap = pow2(levels[g] - 1) if level_cap else np.inf
        used = False
        for r in range(b):
            if active[r, c] and min_id_below[g] < row_limit[r]:
                if may_descend(dist[r, c], radii[g], min(row_bound[r], cap), slack):
                    descend[r, c] = True
                    used = True
        if used:
            count += nkids
    next_nodes = np.empty(count, dtype=np.int64)
    next_active = np.zeros((b, count), dtype=np.bool_)
    pos = 0
    for c in range(f):
        g = nodes[c]
        lo = child_ptr[g]
        hi = child_ptr[g + 1]
        if hi == lo:
            continue
        used = False
        for r in range(b):
            if descend[r, c]:
                used = True
                for t in range(hi - lo):
                    next_active[r, pos + t] = True
        if used:
            next_nodes[pos:pos + hi - lo] = child_idx[lo:hi]
            pos += hi - lo
    return next_nodes, next_active
