"""Breadth-first layout of a tree: every node's children sit at consecutive positions.

Pointwise walks evaluate all children of a node in a row; with the children and
their coordinates contiguous those evaluations stream through memory instead of
jumping across the data set.
"""

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def bfs_layout(root, child_ptr, child_idx, n_nodes):
    """order (m,) ids by position; child_start, child_count (m,) per position."""
    order = np.empty(n_nodes, dtype=np.int64)
    child_start = np.empty(n_nodes, dtype=np.int64)
    child_count = np.empty(n_nodes, dtype=np.int64)
    order[0] = root
    tail = 1
    for head in range(n_nodes):
        v = order[head]
        lo = child_ptr[v]
        hi = child_ptr[v + 1]
        child_start[head] = tail
        child_count[head] = hi - lo
        for t in range(lo, hi):
            order[tail] = child_idx[t]
            tail += 1
    return order, child_start, child_count


@njit(nogil=True, cache=True)
def subtree_ranges(child_start, child_count):
    """Depth-first (pre-order) ranks of a breadth-first layout, in which every subtree is one
    run of consecutive ranks: the subtree of position c holds ranks start[c] ..
    start[c] + size[c] - 1, c itself first. Returns (by_rank (m,) the position at each
    rank, start (m,), size (m,)), all int64."""
    m = child_count.shape[0]
    size = np.ones(m, dtype=np.int64)
    # Children sit after their parent in a breadth-first layout: one backward pass sums them.
    for c in range(m - 1, -1, -1):
        lo = child_start[c]
        for g in range(lo, lo + child_count[c]):
            size[c] += size[g]
    by_rank = np.empty(m, dtype=np.int64)
    start = np.empty(m, dtype=np.int64)
    start[0] = 0
    by_rank[0] = 0
    for c in range(m):
        # start[c] is set before c is reached: parents precede children in both orders.
        nxt = start[c] + 1
        lo = child_start[c]
        for g in range(lo, lo + child_count[c]):
            start[g] = nxt
            by_rank[nxt] = g
            nxt += size[g]
    return by_rank, start, size
