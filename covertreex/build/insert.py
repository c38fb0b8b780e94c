"""Batch insertion of the parallel compressed cover tree (PCCT scheme).

Why the scan's level is right. Say node q claims p when d(p, q) <= 2**level(q), and
let B be the lowest level_of_distance(d(p, q)) over claiming q (the root claims every
point). Put p at level j = B - 1 under the claiming node that attains B:
- covering: d(p, parent) <= 2**B = 2**(j + 1) and level(parent) >= B > j;
- separation: for l <= j and any node q of level >= l, either q claims p, so
  level_of_distance(d) >= B > l, or it does not, so d > 2**level(q) >= 2**l.
Within a batch the same argument needs batch points at levels j_a, j_c to be more than
2**min(j_a, j_c) apart; the conflict graph and its independent sets ensure it.
"""

from __future__ import annotations

import numpy as np

from ..tree import TreeArrays, children_csr, finalize
from .conflict_kernels import grow_radii, place_batch
from .scan import scan_batch

# The root belongs to every level: a level no distance can reach.
_ROOT_LEVEL = 1 << 40
_UNSET = -(1 << 50)


def batch_sizes(n_rest: int, batch_size: int):
    """Prefix doubling: 1, 2, 4, ... up to batch_size, covering n_rest points."""
    size = 1
    while n_rest > 0:
        take = min(size, n_rest)
        yield take
        n_rest -= take
        size = min(2 * size, batch_size)


def build_tree(metric, order: np.ndarray, runtime) -> TreeArrays:
    """Insert the points of ``metric`` in ``order`` (n,) and freeze the tree."""
    n = metric.n
    strategy = runtime.strategy or metric.default_strategy
    levels = np.full(n, _UNSET, dtype=np.int64)
    parents = np.full(n, -1, dtype=np.int64)
    parent_dist = np.zeros(n)
    radii = np.zeros(n)
    min_id_below = np.zeros(n, dtype=np.int64)  # unused by build scans (no id limit)
    root = int(order[0])
    levels[root] = _ROOT_LEVEL
    rng = np.random.default_rng(runtime.seed)
    pos = 1
    for size in batch_sizes(n - 1, runtime.batch_size):
        batch = order[pos:pos + size]
        child_ptr, child_idx = children_csr(parents, levels, order[:pos])
        best, parent, pdist = scan_batch(strategy, metric, batch, levels, radii, min_id_below,
                                         child_ptr, child_idx, root, runtime.query_block)
        pairwise = metric.tile(metric.data, batch, batch)
        inserted, _rounds = place_batch(batch, pairwise, best, parent, pdist, rng.random(size),
                                        levels, parents, parent_dist)
        grow_radii(metric.pair, metric.data, inserted, parents, radii)
        pos += size
    return finalize(levels, parents, radii, root)
