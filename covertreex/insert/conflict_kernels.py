"""Numba kernels that place one batch: conflict graph, Luby MIS, insertion, radii.

Two batch points conflict when both would enter a level at which they are not
separated: level_of_distance(d(a, c)) <= min(j_a, j_c) for insertion levels j.
Each round inserts a maximal independent set of the conflict graph; the others
take the new nodes into account (they may now claim a lower level under one of
them) and try again, until the batch is placed.
"""

from collections import namedtuple

import numpy as np
from numba import njit, prange

from ..engine.specialise import template
from ..engine.frontier_kernels import level_of_distance, pow2
from ..tree import FLOOR_LEVEL

# The placed nodes' arrays that a round of insertion writes: levels, parents (n,) int64 and
# parent_dist (n,) float64.
NodeArrays = namedtuple("NodeArrays", ["levels", "parents", "parent_dist"])

# Templates below call ``pair(qdata, i, tdata, j)``, a metric's pair kernel, bound per metric
# when covertreex.engine.specialise compiles them; this module-level name is never called.
pair = None


@njit(cache=True, nogil=True)
def luby_mis(adj_ptr, adj_idx, key):
    """Luby's maximal independent set with fixed priorities (larger key wins).

    adj_ptr (v + 1,), adj_idx: CSR graph on v vertices; key (v,) float64, distinct.
    Each sweep adds every undecided vertex whose key beats all undecided neighbours
    and removes their neighbours. Returns a (v,) bool mask of the set.
    """
    v = adj_ptr.shape[0] - 1
    state = np.zeros(v, dtype=np.int8)  # 0 undecided, 1 in the set, -1 removed
    undecided = v
    while undecided > 0:
        winners = np.zeros(v, dtype=np.bool_)
        for x in range(v):
            if state[x] != 0:
                continue
            wins = True
            for t in range(adj_ptr[x], adj_ptr[x + 1]):
                y = adj_idx[t]
                if state[y] == 0 and key[y] > key[x]:
                    wins = False
                    break
            winners[x] = wins
        for x in range(v):
            if winners[x]:
                state[x] = 1
                undecided -= 1
        for x in range(v):
            if winners[x]:
                for t in range(adj_ptr[x], adj_ptr[x + 1]):
                    y = adj_idx[t]
                    if state[y] == 0:
                        state[y] = -1
                        undecided -= 1
    return state == 1


@njit(cache=True, nogil=True)
def conflict_graph(pairwise, members, level):
    """CSR conflict graph (ptr (v + 1,), idx) among ``members`` (v,) local batch positions."""
    v = members.shape[0]
    deg = np.zeros(v + 1, dtype=np.int64)
    for x in range(v):
        for y in range(v):
            if x != y and _conflict(pairwise, members[x], members[y], level):
                deg[x + 1] += 1
    ptr = np.cumsum(deg)
    idx = np.empty(ptr[v], dtype=np.int64)
    fill = ptr[:-1].copy()
    for x in range(v):
        for y in range(v):
            if x != y and _conflict(pairwise, members[x], members[y], level):
                idx[fill[x]] = y
                fill[x] += 1
    return ptr, idx


@njit(nogil=True, inline="always")
def _conflict(pairwise, a, c, level):
    # level_of_distance(d) <= m exactly when d <= 2**m (it is the least such level, clamped
    # to FLOOR_LEVEL + 1): a table read and a comparison per pair instead of a libm frexp.
    m = min(level[a], level[c])
    return m > FLOOR_LEVEL and pairwise[a, c] <= pow2(m)


@njit(cache=True, nogil=True)
def place_round(batch, chosen, level, pairwise, placed, scan, nodes, inserted, n_placed):
    """Insert the batch positions ``chosen`` at ``level`` into ``nodes`` (``NodeArrays``);
    every unplaced point then takes the new nodes into account in ``scan`` (the batch's
    ``WalkState``: a new node s claims a when level_of_distance(d(a, s)) <= level[s]).
    Returns the new count of placed points."""
    best, parent, pdist = scan.best, scan.parent, scan.pdist
    levels, parents, parent_dist = nodes.levels, nodes.parents, nodes.parent_dist
    for a in chosen:
        placed[a] = True
        p = batch[a]
        levels[p] = level[a]
        parents[p] = parent[a]
        parent_dist[p] = pdist[a]
        inserted[n_placed] = p
        n_placed += 1
    for a in range(batch.shape[0]):
        if placed[a]:
            continue
        for s in chosen:
            d = pairwise[a, s]
            lvl = level_of_distance(d)
            if lvl <= level[s] and (lvl < best[a] or (lvl == best[a] and d < pdist[a])):
                best[a] = lvl
                parent[a] = batch[s]
                pdist[a] = d
    return n_placed


@template(parallel=True)
def pairwise_by_pairs(data, batch, out):
    """out (b, b) = d(batch[x], batch[y]) one pair at a time (no tile reuse)."""
    b = batch.shape[0]
    for x in prange(b):
        for y in range(b):
            out[x, y] = pair(data, batch[x], data, batch[y])


@template()
def grow_radii(data, inserted, parents, radii):
    """Raise the radius of every ancestor of each inserted id to cover it.

    Serial on purpose: after a parallel region libgomp's workers spin for milliseconds
    (its default wait policy), on the cores the next batch's blocked walks need
    (perf/README.md, "Serial radii").
    """
    for x in range(inserted.shape[0]):
        p = inserted[x]
        a = parents[p]
        while a >= 0:
            d = pair(data, p, data, a)
            if d > radii[a]:
                radii[a] = d
            a = parents[a]
