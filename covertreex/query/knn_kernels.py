"""Numba kernels of exact kNN: the pointwise tree walk (the heaps are in engine.visit_kernels).

Rows keep their k best (distance, id) pairs in max-heaps ordered by distance then
id, so among equal distances the lower id wins, as in the reference. A row admits
node g when g != exclude[row] and g < limit[row] (predecessor mode sets limit to the
query's own id); subtrees whose smallest id is >= limit are skipped whole.
"""

import numpy as np
from numba import njit, prange

from ..engine.specialise import template
from ..engine.frontier_kernels import may_descend
from ..engine.visit_kernels import heap_offer

# Templates below call a metric's kernels, bound per metric when covertreex.engine.specialise
# compiles them: ``pair(qdata, i, tdata, j)`` and its cheaper monotone key ``pair_key`` with
# ``key_to_distance``, ``distance_to_key``. These module-level names are never called.
pair = pair_key = key_to_distance = distance_to_key = None


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


@template(parallel=True)
def knn_pointwise(qdata, lay, block, scan_max, slack, n_chunks, hd, hi, pairs):
    """Depth-first, nearest-subtree-first kNN per row of ``block`` (a ``Rows``) over the
    breadth-first ``Layout`` lay (covertreex.engine.layout). A subtree of at most scan_max
    nodes that may hold a neighbour is scanned whole from the layout's depth-first copy
    instead of walked. Fills the heaps hd, hi (q, k) with dataset ids and pairs (q,), the
    distances each row evaluated."""
    rows, exclude, limit = block.ids, block.exclude, block.limit
    order, child_start, child_count = lay.order, lay.child_start, lay.child_count
    radii, min_id_below, ldata = lay.radii, lay.min_id_below, lay.data
    subtree_start, subtree_size, dfs_ids, dfs_data = (lay.run_start, lay.run_size,
                                                      lay.run_ids, lay.run_data)
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
