"""What a blocked walk does with one evaluated tile: claims (build scans) and heap offers
(kNN), shared by the pointwise walks of insert/ and query/.

Claims: batch point p is claimed by node q when d(p, q) <= 2**level(q); the lowest claim
level fixes p's insertion level (see covertreex/insert/insert.py). Heaps: a row keeps its k
best (distance, id) pairs in a max-heap ordered by distance then id, so among equal
distances the lower id wins, as in the reference.
"""

import numpy as np
from numba import njit

from .frontier_kernels import level_of_distance, pow2


@njit(nogil=True, inline="always")
def claim(dg, g, lg, best, parent, pdist, a):
    lvl = level_of_distance(dg)
    if lvl <= lg and (lvl < best[a] or (lvl == best[a] and dg < pdist[a])):
        best[a] = lvl
        parent[a] = g
        pdist[a] = dg


@njit(cache=True, nogil=True)
def claim_tile(dist, nodes, active, levels, best, parent, pdist):
    """Apply the claims of one frontier tile: dist, active (b, f) against nodes (f,).

    d > min(2**level(g), 2**best) holds exactly when level_of_distance(d) exceeds both, and
    then no claim is possible, so most pairs are settled by one comparison without frexp.
    """
    b, f = dist.shape
    col_cap = np.empty(f)
    for c in range(f):
        col_cap[c] = pow2(levels[nodes[c]])
    for a in range(b):
        row_cap = pow2(best[a])
        for c in range(f):
            if active[a, c] and dist[a, c] <= min(col_cap[c], row_cap):
                g = nodes[c]
                claim(dist[a, c], g, levels[g], best, parent, pdist, a)
                row_cap = pow2(best[a])


@njit(cache=True, nogil=True)
def claim_bounds(best):
    """Per-row descent bound 2**(best - 1) of the blocked scan."""
    out = np.empty(best.shape[0])
    for a in range(best.shape[0]):
        out[a] = pow2(best[a] - 1)
    return out


@njit(nogil=True, inline="always")
def _worse(d1, i1, d2, i2):
    return d1 > d2 or (d1 == d2 and i1 > i2)


@njit(cache=True, nogil=True)
def heap_offer(hd, hi, r, d, g):
    """Offer (d, g) to row r of the max-heaps hd, hi (rows, k)."""
    if not _worse(hd[r, 0], hi[r, 0], d, g):
        return
    k = hd.shape[1]
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= k:
            break
        child = left
        right = left + 1
        if right < k and _worse(hd[r, right], hi[r, right], hd[r, left], hi[r, left]):
            child = right
        if _worse(hd[r, child], hi[r, child], d, g):
            hd[r, pos] = hd[r, child]
            hi[r, pos] = hi[r, child]
            pos = child
        else:
            break
    hd[r, pos] = d
    hi[r, pos] = g


@njit(nogil=True, inline="always")
def held(hi, r, g):
    """Whether row r of the heap ids hi (rows, k) holds id g: a seeded heap (see
    covertreex.query.seeds) may already hold a point the walk reaches."""
    for t in range(hi.shape[1]):
        if hi[r, t] == g:
            return True
    return False


@njit(cache=True, nogil=True)
def offer_tile(dist, nodes, active, exclude, limit, hd, hi):
    """Offer every active (row, node) pair of a frontier tile: dist, active (b, f)."""
    b, f = dist.shape
    for r in range(b):
        # Most pairs lose to the row's current k-th distance: one comparison turns them away
        # before the id checks and the heap (heap_offer repeats it with the id tie-break).
        worst = hd[r, 0]
        for c in range(f):
            if active[r, c] and dist[r, c] <= worst:
                g = nodes[c]
                if g != exclude[r] and g < limit[r] and not held(hi, r, g):
                    heap_offer(hd, hi, r, dist[r, c], g)
                    worst = hd[r, 0]


@njit(cache=True, nogil=True)
def offer_scan(dist, c0, exclude, limit, hd, hi):
    """Offer every pair of a brute-force scan's tile: dist (b, f) of rows against the ids
    c0 .. c0 + f - 1, none of them seeded or offered before. A row first tests in one
    branch-free pass, which LLVM vectorises, whether any pair beats its current k-th
    distance; most rows of a long scan have none."""
    b, f = dist.shape
    for r in range(b):
        worst = hd[r, 0]
        hit = False
        for c in range(f):
            hit |= dist[r, c] <= worst
        if not hit:
            continue
        for c in range(f):
            if dist[r, c] <= worst:
                g = c0 + c
                if g != exclude[r] and g < limit[r]:
                    heap_offer(hd, hi, r, dist[r, c], g)
                    worst = hd[r, 0]


@njit(cache=True, nogil=True)
def merge_tile_sorted(dist, nodes, active, exclude, limit, hd, hi):
    """Pre-audit selection (phase topk_selection off): each row's admissible tile
    entries and its current k best are fully sorted together and the first k kept.
    The rows of hd, hi stay max-heaps: a descending sorted array is one."""
    b, f = dist.shape
    k = hd.shape[1]
    for r in range(b):
        cand_d = np.empty(f + k)
        cand_i = np.empty(f + k, dtype=np.int64)
        m = 0
        for t in range(k):
            cand_d[m] = hd[r, t]
            cand_i[m] = hi[r, t]
            m += 1
        for c in range(f):
            g = nodes[c]
            if active[r, c] and g != exclude[r] and g < limit[r] and not held(hi, r, g):
                cand_d[m] = dist[r, c]
                cand_i[m] = g
                m += 1
        # Sort by id, then stably by distance: (distance, id) order.
        by_id = np.argsort(cand_i[:m], kind="mergesort")
        order = by_id[np.argsort(cand_d[:m][by_id], kind="mergesort")]
        for t in range(k):
            hd[r, k - 1 - t] = cand_d[order[t]]
            hi[r, k - 1 - t] = cand_i[order[t]]
