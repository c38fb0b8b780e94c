"""Numba kernels of the insertion scan: each batch point's level and parent.

For a batch point p and tree nodes q, q "claims" p when d(p, q) <= 2**level(q); the
lowest claim level B = min over claiming q of level_of_distance(d(p, q)) fixes p's
insertion level B - 1, the highest level at which p is separated from every node
(proof in covertreex/insert/insert.py). The claiming node at B is p's parent. A subtree
of g can lower B only through a node w with d(p, w) <= min(2**(level(g) - 1), 2**(B - 1)).
"""

import numpy as np
from numba import prange

from ..engine.specialise import template
from ..engine.frontier_kernels import level_of_distance, may_descend, pow2
from ..engine.visit_kernels import claim

# Templates below call a metric's kernels, bound per metric when covertreex.engine.specialise
# compiles them: ``pair(qdata, i, tdata, j)`` and its cheaper monotone key ``pair_key`` with
# ``key_to_distance``, ``distance_to_key``. These module-level names are never called.
pair = pair_key = key_to_distance = distance_to_key = None


@template(parallel=True)
def scan_pointwise(qdata, lay, batch, slack, n_chunks, state):
    """Depth-first scan per batch point (batch (b,) ids) over the breadth-first ``Layout``
    lay (covertreex.engine.layout); fills state.best, state.parent (dataset ids) and
    state.pdist (b,) of ``state``, a ``WalkState``."""
    order, child_start, child_count = lay.order, lay.child_start, lay.child_count
    levels, radii, ldata = lay.levels, lay.radii, lay.data
    best, parent, pdist = state.best, state.parent, state.pdist
    b = batch.shape[0]
    n = order.shape[0]
    for chunk in prange(n_chunks):
        stack = np.empty(n, dtype=np.int64)
        stack_d = np.empty(n)
        keys = np.empty(n)
        for a in range(chunk * b // n_chunks, (chunk + 1) * b // n_chunks):
            p = batch[a]
            d0 = pair(qdata, p, ldata, 0)
            best[a] = level_of_distance(d0)
            parent[a] = order[0]
            pdist[a] = d0
            stack[0] = 0
            stack_d[0] = d0
            top = 1
            while top > 0:
                top -= 1
                c = stack[top]
                if c != 0:
                    # best may have dropped since c was pushed.
                    bound = pow2(min(levels[c], best[a]) - 1)
                    if not may_descend(stack_d[top], radii[c], bound, slack):
                        continue
                # The children's keys first, in one branch-free pass over their contiguous
                # rows; then only the few children that matter take branches.
                lo = child_start[c]
                nkids = child_count[c]
                for t in range(nkids):
                    keys[t] = pair_key(qdata, p, ldata, lo + t)
                for t in range(nkids):
                    g = lo + t
                    lg = levels[g]
                    # g can claim only within min(2**best, 2**level(g)), and its subtree
                    # matters only within radius(g) + min(2**(level(g) - 1), 2**(best - 1)).
                    reach = max(min(pow2(best[a]), pow2(lg)),
                                radii[g] + pow2(min(lg, best[a]) - 1)) + slack
                    if keys[t] > distance_to_key(reach * (1.0 + 1e-9)):
                        continue
                    dg = key_to_distance(keys[t])
                    # A claim needs dg <= 2**level(g); most pairs fail that one comparison.
                    if dg <= pow2(lg):
                        claim(dg, order[g], lg, best, parent, pdist, a)
                    if child_count[g] > 0:
                        bound = pow2(min(lg, best[a]) - 1)
                        if may_descend(dg, radii[g], bound, slack):
                            stack[top] = g
                            stack_d[top] = dg
                            top += 1


