"""Numba kernels of exact kNN: bounded max-heaps and the pointwise tree walk.

A row keeps its k best (distance, id) pairs in a max-heap ordered by distance then
id, so among equal distances the lower id wins, as in the reference. A row admits
node g when g != exclude[row] and g < limit[row] (predecessor mode sets limit to the
query's own id); subtrees whose smallest id is >= limit are skipped whole.
"""

import numpy as np
from numba import njit, prange

from ..engine.frontier_kernels import may_descend

# Templates below call a metric's kernels, bound per metric when covertreex.engine.specialise
# compiles them: ``pair(qdata, i, tdata, j)`` and its cheaper monotone key ``pair_key`` with
# ``key_to_distance``, ``distance_to_key``. These module-level names are never called.
pair = pair_key = key_to_distance = distance_to_key = None


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


@njit(cache=True, nogil=True)
def offer_tile(dist, nodes, active, exclude, limit, hd, hi):
    """Offer every active (row, node) pair of a frontier tile: dist, active (b, f)."""
    b, f = dist.shape
    for r in range(b):
        for c in range(f):
            g = nodes[c]
            if active[r, c] and g != exclude[r] and g < limit[r]:
                heap_offer(hd, hi, r, dist[r, c], g)


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
            if active[r, c] and g != exclude[r] and g < limit[r]:
                cand_d[m] = dist[r, c]
                cand_i[m] = g
                m += 1
        # Sort by id, then stably by distance: (distance, id) order.
        by_id = np.argsort(cand_i[:m], kind="mergesort")
        order = by_id[np.argsort(cand_d[:m][by_id], kind="mergesort")]
        for t in range(k):
            hd[r, k - 1 - t] = cand_d[order[t]]
            hi[r, k - 1 - t] = cand_i[order[t]]


@njit(cache=True, nogil=True)
def _sort_segment(stack, stack_d, lo, hi, radii):
    """Order stack[lo:hi] by descending lower bound d - radius so the nearest subtree
    pops first. Insertion sort in place: segments are short and this runs per node."""
    for t in range(lo + 1, hi):
        g = stack[t]
        dg = stack_d[t]
        key = dg - radii[g]
        u = t - 1
        while u >= lo and stack_d[u] - radii[stack[u]] < key:
            stack[u + 1] = stack[u]
            stack_d[u + 1] = stack_d[u]
            u -= 1
        stack[u + 1] = g
        stack_d[u + 1] = dg


def knn_pointwise(qdata, ldata, rows, exclude, limit, order, child_start, child_count,
                  radii, min_id_below, subtree_start, subtree_size, dfs_ids,
                  dfs_data, scan_max, slack, n_chunks, hd, hi, pairs):
    """Depth-first, nearest-subtree-first kNN per row over a breadth-first layout
    (covertreex.engine.layout: position 0 is the root, arrays indexed by position, ldata the
    pair data in position order). A subtree of at most scan_max nodes that may hold a
    neighbour is scanned whole from the depth-first copy (dfs_ids, dfs_data) instead of
    walked. Fills the heaps hd, hi (q, k) with dataset ids and pairs (q,), the distances
    each row evaluated."""
    q = rows.shape[0]
    n = order.shape[0]
    for chunk in prange(n_chunks):
        stack = np.empty(n, dtype=np.int64)
        stack_d = np.empty(n)
        keys = np.empty(n)
        for a in range(chunk * q // n_chunks, (chunk + 1) * q // n_chunks):
            i = rows[a]
            if min_id_below[0] >= limit[a]:
                continue
            d0 = pair(qdata, i, ldata, 0)
            evaluated = 1
            if order[0] != exclude[a] and order[0] < limit[a]:
                heap_offer(hd, hi, a, d0, order[0])
            stack[0] = 0
            stack_d[0] = d0
            top = 1
            while top > 0:
                top -= 1
                c = stack[top]
                if not may_descend(stack_d[top], radii[c], hd[a, 0], slack):
                    continue
                base = top
                lo = child_start[c]
                # The children's keys first, in one branch-free pass over their contiguous
                # rows; then only the few children that matter take branches.
                nkids = child_count[c]
                for t in range(nkids):
                    keys[t] = pair_key(qdata, i, ldata, lo + t)
                evaluated += nkids
                for t in range(nkids):
                    g = lo + t
                    # Entering the heap (dg <= bound) and may_descend both imply
                    # dg <= (bound + radius + slack)(1 + 3e-10): one key comparison.
                    reach = (hd[a, 0] + radii[g] + slack) * (1.0 + 1e-9)
                    if keys[t] > distance_to_key(reach) or min_id_below[g] >= limit[a]:
                        continue
                    dg = key_to_distance(keys[t])
                    gid = order[g]
                    # Most pairs lose to the row's k-th best: test before the call.
                    if dg <= hd[a, 0] and gid != exclude[a] and gid < limit[a]:
                        heap_offer(hd, hi, a, dg, gid)
                    if child_count[g] == 0 or not may_descend(dg, radii[g], hd[a, 0], slack):
                        continue
                    if subtree_size[g] <= scan_max:
                        # Compare keys (for Euclidean, squared distances); take a distance
                        # only for a pair that may enter the heap.
                        first = subtree_start[g] + 1
                        last = subtree_start[g] + subtree_size[g]
                        key_bound = distance_to_key(hd[a, 0])
                        for w in range(first, last):
                            key = pair_key(qdata, i, dfs_data, w)
                            wid = dfs_ids[w]
                            if key <= key_bound and wid != exclude[a] and wid < limit[a]:
                                heap_offer(hd, hi, a, key_to_distance(key), wid)
                                key_bound = distance_to_key(hd[a, 0])
                        evaluated += last - first
                    else:
                        stack[top] = g
                        stack_d[top] = dg
                        top += 1
                _sort_segment(stack, stack_d, base, top, radii)
            pairs[a] = evaluated
