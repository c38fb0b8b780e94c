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

import time
from contextlib import nullcontext

import numpy as np

from ..engine.specialise import specialise
from ..engine.walk import WalkPool
from ..metrics.protocol import ALL_PAIRS
from ..telemetry import (F32_DECIDED, F32_REFINED, KP_MS, KP_PAIRS, WALK_MS, WB_MS, WB_PAIRS,
                         BatchRecord, new_counters, settle)
from ..tree import FLOOR_LEVEL, TreeArrays, TreeView, children_csr, finalize
from .conflict_kernels import (NodeArrays, conflict_graph, grow_radii, luby_mis,
                               pairwise_by_pairs, place_round)
from .scan import scan_batch

# The root belongs to every level: a level no distance can reach.
_ROOT_LEVEL = 1 << 40
_UNSET = -(1 << 50)


class ResidualPairwiseCacheError(RuntimeError):
    """The conflict graph was asked to reuse batch distances the traversal did not keep."""


def batch_sizes(n_rest: int, batch_size: int):
    """Prefix doubling: 1, 2, 4, ... up to batch_size, covering n_rest points."""
    size = 1
    while n_rest > 0:
        take = min(size, n_rest)
        yield take
        n_rest -= take
        size = min(2 * size, batch_size)


def conflict_pairwise(metric, batch, cached, reuse: bool) -> np.ndarray:
    """Batch-by-batch distances for the conflict graph: the traversal's tile when
    phase 3 reuses it (which must then exist), else recomputed pair by pair."""
    if reuse:
        if cached is None:
            raise ResidualPairwiseCacheError(
                "conflict graph expected the batch distances cached by the traversal "
                "(phase pairwise_reuse is on) but none were cached"
            )
        return cached
    out = np.empty((batch.shape[0], batch.shape[0]))
    specialise(pairwise_by_pairs, metric.kernels)(metric.data, batch, out)
    return out


def _place(batch, pairwise, scan, tiebreak, nodes):
    """Insert a batch round by round: scan is the batch's ``WalkState`` (best, parent,
    pdist), nodes the tree's ``NodeArrays``. Returns (inserted ids in order, first-round
    set size, rounds, conflict-graph ms, MIS ms)."""
    b = batch.shape[0]
    placed = np.zeros(b, dtype=np.bool_)
    inserted = np.empty(b, dtype=np.int64)
    level = np.empty(b, dtype=np.int64)
    n_placed, rounds, selected = 0, 0, 0
    graph_ms = mis_ms = 0.0
    while n_placed < b:
        members = np.flatnonzero(~placed)
        level[members] = np.maximum(scan.best[members] - 1, FLOOR_LEVEL)
        t0 = time.perf_counter()
        ptr, idx = conflict_graph(pairwise, members, level)
        t1 = time.perf_counter()
        # Coarser points first: they are the net the finer ones hang from.
        chosen = members[luby_mis(ptr, idx, level[members] + tiebreak[members])]
        t2 = time.perf_counter()
        graph_ms += (t1 - t0) * 1e3
        mis_ms += (t2 - t1) * 1e3
        if rounds == 0:
            selected = chosen.shape[0]
        rounds += 1
        n_placed = place_round(batch, chosen, level, pairwise, placed, scan, nodes, inserted,
                               n_placed)
    return inserted, selected, rounds, graph_ms, mis_ms


def _no_clock() -> float:
    return 0.0


def _timed_tile(metric, batch, counters):
    """(batch x batch distance tile, its thread milliseconds)."""
    start = time.perf_counter()
    tile = metric.tile(metric.data, batch, batch, counters)
    return tile, (time.perf_counter() - start) * 1e3


def _tile_tasks(pool, batch, out):
    """``WalkPool`` tasks that fill out (b, b) with the batch's distance tile against itself,
    ``pool.block`` rows per task, every pair in float64: by the nopython tile kernel or by
    Python's ``metric.tile``, as the pool's walks compute theirs."""
    metric, nopython, block = pool.metric, pool.plan.nopython, pool.block
    cols_thr = np.full(batch.shape[0], np.inf)

    def rows_task(lo):
        rows = batch[lo:lo + block]

        def task(workspace, counters):
            if nopython:
                out[lo:lo + rows.shape[0]] = metric.kernels.tile_kernel(
                    metric.data, metric.data, rows, batch, ALL_PAIRS,
                    np.full(rows.shape[0], np.inf), cols_thr, workspace, counters)
            else:
                out[lo:lo + rows.shape[0]] = metric.tile(metric.data, rows, batch, counters)
        return task

    return [rows_task(lo) for lo in range(0, batch.shape[0], block)]


def build_tree(metric, order: np.ndarray, plan, progress=None, telemetry: bool = True
               ) -> tuple[TreeArrays, tuple[BatchRecord, ...]]:
    """Insert the points of ``metric`` in ``order`` (n,) and freeze the tree; plan: the
    runtime's ``Plan`` (its insert and walk plans).

    progress: None or callable(placed, n) called after each batch.
    telemetry: False skips every timer, counter and record (to measure their cost).
    Returns the tree arrays and one telemetry record per batch (none without telemetry).
    """
    blocked = plan.walk.traversal == "blocked"
    with WalkPool(metric, plan.walk) if blocked else nullcontext() as pool:
        return _build(metric, order, plan.insert, pool, progress, telemetry)


def _build(metric, order, plan, pool, progress, telemetry):
    clock = time.perf_counter if telemetry else _no_clock
    n = metric.n
    reuse = plan.pairwise_reuse
    levels = np.full(n, _UNSET, dtype=np.int64)
    parents = np.full(n, -1, dtype=np.int64)
    parent_dist = np.zeros(n)
    radii = np.zeros(n)
    min_id_below = np.zeros(n, dtype=np.int64)  # build scans have no id limit
    root = int(order[0])
    levels[root] = _ROOT_LEVEL
    rng = np.random.default_rng(plan.seed)
    nodes = NodeArrays(levels, parents, parent_dist)
    radii_of = specialise(grow_radii, metric.kernels)
    records = []
    pos = 1
    # The batch's own tile (pairwise_reuse) does not depend on the scan: blocked walks queue
    # it behind their blocks, so a thread whose block ends first takes it up, where a side
    # thread would share the cores with both walks (perf/README.md, "Build scheduling").
    tile_tasks = pool is not None and reuse
    for batch_index, size in enumerate(batch_sizes(n - 1, plan.batch_size)):
        batch = order[pos:pos + size]
        counters = new_counters() if telemetry else np.zeros(0)
        t0 = clock()
        child_ptr, child_idx = children_csr(parents, levels, order[:pos])
        t1 = clock()
        cached, tile_ms, then = None, 0.0, ()
        if tile_tasks:
            cached = np.empty((size, size))
            then = _tile_tasks(pool, batch, cached)
        tree = TreeView(root, levels, radii, parent_dist, min_id_below, child_ptr, child_idx)
        scan = scan_batch(metric, batch, tree, pos, pool, counters, then)
        t_scan = clock()
        if reuse and not tile_tasks:
            cached, tile_ms = _timed_tile(metric, batch, counters)
        t2 = clock()
        pairwise = conflict_pairwise(metric, batch, cached, reuse)
        t3 = clock()
        inserted, selected, rounds, graph_ms, mis_ms = _place(batch, pairwise, scan,
                                                              rng.random(size), nodes)
        radii_of(metric.data, inserted, parents, radii)
        pos += size
        if progress is not None:
            progress(pos, n)
        if not telemetry:
            continue
        settle(counters)
        # Blocked walks report their tasks' thread time (the tile's included); a pointwise
        # scan counts as its wall.
        walks_ms = float(counters[WALK_MS]) or (t_scan - t1) * 1e3
        records.append(BatchRecord(
            batch_index=batch_index,
            batch_size=int(size),
            traversal_ms=(t2 - t1) * 1e3,
            conflict_graph_ms=(t3 - t2) * 1e3 + graph_ms,
            mis_ms=mis_ms,
            whitened_block_pairs=int(counters[WB_PAIRS]),
            whitened_block_ms=float(counters[WB_MS]),
            kernel_provider_pairs=int(counters[KP_PAIRS]),
            kernel_provider_ms=float(counters[KP_MS]),
            conflict_pairwise_reused=int(reuse),
            semisort_ms=(t1 - t0) * 1e3,
            selected=int(selected),
            dominated=bool(selected < size / 2),
            rounds=int(rounds),
            traversal_thread_ms=tile_ms + walks_ms,
            float32_decided_pairs=int(counters[F32_DECIDED]),
            float32_refined_pairs=int(counters[F32_REFINED]),
        ))
    return finalize(levels, parents, radii, parent_dist, root), tuple(records)
