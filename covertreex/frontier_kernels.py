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


# 2.0**l for l in [-_POW2_SPAN, _POW2_SPAN]: beyond float64's exponent range both ends
# saturate (0.0 and inf). A table read costs under 1 ns where math.ldexp, a libm call, costs
# about 6 ns, and the scans take several powers of two per child.
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


@njit(cache=True, nogil=True)
def expand_frontier(dist, nodes, active, row_bound, level_cap, row_limit, slack,
                    levels, radii, parent_dist, min_id_below, child_ptr, child_idx):
    """Children of the frontier that some row must visit next.

    dist, active: (b, f) distances and visit flags of rows against frontier ``nodes`` (f,).
    A row descends into node g when ``may_descend`` holds for bound
    min(row_bound[r], 2**(level[g] - 1) if level_cap) and min_id_below[g] < row_limit[r];
    it then needs child h unless ``child_needed_capped`` rules it out, and a child no row
    needs leaves the frontier. Returns (next_nodes (f2,) int64, next_active (b, f2) bool).
    """
    b, f = dist.shape
    # Pass 1: which (row, child) pairs are needed, as flat lists per frontier node.
    total = 0
    for c in range(f):
        total += child_ptr[nodes[c] + 1] - child_ptr[nodes[c]]
    need = np.zeros((b, total), dtype=np.bool_)
    kid_used = np.zeros(total, dtype=np.bool_)
    most_kids = 0
    for c in range(f):
        most_kids = max(most_kids, child_ptr[nodes[c] + 1] - child_ptr[nodes[c]])
    kid_cap_self = np.empty(most_kids)
    kid_cap_below = np.empty(most_kids)
    base = 0
    for c in range(f):
        g = nodes[c]
        lo = child_ptr[g]
        nkids = child_ptr[g + 1] - lo
        if nkids == 0:
            continue
        cap = pow2(levels[g] - 1) if level_cap else np.inf
        # The children's level caps do not depend on the row: computed once here, not per pair.
        for t in range(nkids):
            h = child_idx[lo + t]
            kid_cap_self[t] = pow2(levels[h])
            kid_cap_below[t] = pow2(levels[h] - 1)
        for r in range(b):
            if not active[r, c] or min_id_below[g] >= row_limit[r]:
                continue
            dc = dist[r, c]
            if not may_descend(dc, radii[g], min(row_bound[r], cap), slack):
                continue
            for t in range(nkids):
                h = child_idx[lo + t]
                if min_id_below[h] < row_limit[r] and child_needed_capped(
                        abs(dc - parent_dist[h]), radii[h], row_bound[r], level_cap,
                        kid_cap_self[t], kid_cap_below[t], slack):
                    need[r, base + t] = True
                    kid_used[base + t] = True
        base += nkids
    # Pass 2: compact to the children some row needs.
    keep = np.flatnonzero(kid_used)
    next_nodes = np.empty(keep.shape[0], dtype=np.int64)
    next_active = np.empty((b, keep.shape[0]), dtype=np.bool_)
    base = 0
    pos = 0
    for c in range(f):
        g = nodes[c]
        for t in range(child_ptr[g], child_ptr[g + 1]):
            if kid_used[base]:
                next_nodes[pos] = child_idx[t]
                for r in range(b):
                    next_active[r, pos] = need[r, base]
                pos += 1
            base += 1
    return next_nodes, next_active
