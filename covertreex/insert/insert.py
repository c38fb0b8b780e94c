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

from ..engine.specialise import ALL_PAIRS
from ..telemetry import (F32_DECIDED, F32_REFINED, KP_MS, KP_PAIRS, WALK_MS, WB_MS, WB_PAIRS,
                         BatchRecord, new_counters, settle)
from ..tree import FLOOR_LEVEL, TreeArrays, children_csr, finalize
from ..engine.walk import WalkPool
from .conflict_kernels import conflict_graph, luby_mis, place_round
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
    metric.kernels.pairwise_by_pairs(metric.data, batch, out)
    return out


def _place(batch, pairwise, best, parent, pdist, tiebreak, levels, parents, parent_dist):
    """Insert a batch round by round; returns (inserted ids in order, first-round set
    size, rounds, conflict-graph ms, MIS ms)."""
    b = batch.shape[0]
    placed = np.zeros(b, dtype=np.bool_)
    inserted = np.empty(b, dtype=np.int64)
    level = np.empty(b, dtype=np.int64)
    n_placed, rounds, selected = 0, 0, 0
    graph_ms = mis_ms = 0.0
    while n_placed < b:
        members = np.flatnonzero(~placed)
        level[members] = np.maximum(best[members] - 1, FLOOR_LEVEL)
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
        n_placed = place_round(batch, chosen, level, pairwise, placed, best, parent, pdist,
                               levels, parents, parent_dist, inserted, n_placed)
    return inserted, selected, rounds, graph_ms, mis_ms


def _no_clock() -> float:
    return 0.0


def _timed_tile(metric, batch, counters):
    """(batch x batch distance tile, its thread milliseconds)."""
    start = time.perf_counter()
    tile = metric.tile(metric.data, batch, batch, counters)
    return tile, (time.perf_counter() - start) * 1e3


def _tile_tasks(metric, batch, block, out):
    """``WalkPool`` tasks that fill out (b, b) with the batch's distance tile against itself,
    ``block`` rows per task, every pair in float64: by the nopython tile kernel (phase 6)
    or by Python's ``metric.tile``, as the walks compute theirs."""
    nopython = metric.phases.nopython_chunk_loop
    cols_thr = np.full(batch.shape[0], np.inf)

    def rows_task(lo):
        rows = batch[lo:lo + block]

        def task(workspace, counters):
            if nopython:
                out[lo:lo + rows.shape[0]] = metric.tile_kernel(
                    metric.data, metric.data, rows, batch, ALL_PAIRS,
                    np.full(rows.shape[0], np.inf), cols_thr, workspace, counters)
            else:
                out[lo:lo + rows.shape[0]] = metric.tile(metric.data, rows, batch, counters)
        return task

    return [rows_task(lo) for lo in range(0, batch.shape[0], block)]


def build_tree(metric, order: np.ndarray, runtime, progress=None, telemetry: bool = True
               ) -> tuple[TreeArrays, tuple[BatchRecord, ...]]:
    """Insert the points of ``metric`` in ``order`` (n,) and freeze the tree.

    progress: None or callable(placed, n) called after each batch.
    telemetry: False skips every timer, counter and record (to measure their cost).
    Returns the tree arrays and one telemetry record per batch (none without telemetry).
    """
    blocked = runtime.traversal == "blocked"
    with WalkPool(metric, runtime.query_block, runtime.threads) if blocked else nullcontext() as pool:
        return _build(metric, order, runtime, pool, progress, telemetry)


def _build(metric, order, runtime, pool, progress, telemetry):
    clock = time.perf_counter if telemetry else _no_clock
    n = metric.n
    reuse = runtime.phases.pairwise_reuse
    levels = np.full(n, _UNSET, dtype=np.int64)
    parents = np.full(n, -1, dtype=np.int64)
    parent_dist = np.zeros(n)
    radii = np.zeros(n)
    min_id_below = np.zeros(n, dtype=np.int64)  # build scans have no id limit
    root = int(order[0])
    levels[root] = _ROOT_LEVEL
    rng = np.random.default_rng(runtime.seed)
    records = []
    pos = 1
    # The batch's own tile (phase 3) does not depend on the scan: blocked walks queue it
    # behind their blocks, so a thread whose block ends first takes it up. Before 5d69688 it
    # ran on a side thread that shared the two cores with both walks; with this and the
    # pool's lasting workspaces, `perf/compare.py --base 5a6ed49 --preset gold-d3` put the
    # build at 0.91x.
    tile_tasks = pool is not None and reuse
    for batch_index, size in enumerate(batch_sizes(n - 1, runtime.batch_size)):
        batch = order[pos:pos + size]
        counters = new_counters() if telemetry else np.zeros(0)
        t0 = clock()
        child_ptr, child_idx = children_csr(parents, levels, order[:pos])
        t1 = clock()
        cached, tile_ms, then = None, 0.0, ()
        if tile_tasks:
            cached = np.empty((size, size))
            then = _tile_tasks(metric, batch, pool.block, cached)
        best, parent, pdist = scan_batch(runtime.traversal, metric, batch, levels, radii,
                                         parent_dist, min_id_below, child_ptr, child_idx,
                                         root, pos, pool, counters, then)
        t_scan = clock()
        if reuse and not tile_tasks:
            cached, tile_ms = _timed_tile(metric, batch, counters)
        t2 = clock()
        pairwise = conflict_pairwise(metric, batch, cached, reuse)
        t3 = clock()
        inserted, selected, rounds, graph_ms, mis_ms = _place(
            batch, pairwise, best, parent, pdist, rng.random(size), levels, parents, parent_dist)
        metric.kernels.grow_radii(metric.data, inserted, parents, radii)
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
