"""Exact kNN queries of one fitted tree across a Dask cluster (optional: needs
``pip install 'covertreex[dask]'``; the rest of covertreex never imports this module or dask).

``knn(tree, queries, k, client=client)`` returns exactly what ``tree.knn(queries, k)`` returns,
distances bit for bit. The tree is sent to every worker once (``client.scatter(tree,
broadcast=True)``, pickled through ``covertreex.persist``: the tree arrays and the points or
residual backend; workers rebuild the metric and layout), the queries are cut into blocks, each
block is one task, and the results are gathered in order.

Exactness of the cut: the blocked traversal evaluates a block of ``query_block`` rows as one
tile, and a residual distance's last bits depend on the tile it is computed in (GEMM). So the
client orders the rows as a local run would (``CoverTree._walk_order``: Hilbert order, or id
order in predecessor mode) and cuts that order at multiples of ``query_block``: every worker
then walks exactly the blocks of the local run. Each block's rows are fitted-point ids for
``queries=None`` and for residual ids (so self-exclusion and predecessor limits hold per
row), or the query points themselves for fresh Euclidean queries.

Faults: a worker that dies mid-task has its tasks rescheduled by Dask on the others (the tree
is replicated on each; the scheduler allows ``distributed.scheduler.allowed-failures`` such
deaths per task); ``retries`` re-runs a task that raised. If a block still fails, the
remaining tasks are cancelled and ``DistributedKnnError`` names the block and the cause (for
a task whose workers kept dying, Dask's ``KilledWorker`` names the last worker). No partial
result is ever returned.

Workers that Dask's nanny starts with its default ``MALLOC_TRIM_THRESHOLD_`` walk markedly
slower: ``scatter_tree`` warns (``WorkerMemoryWarning``) when a worker has it, and
docs/distributed.md, "Worker memory settings", shows how to unset it.
"""

from __future__ import annotations

import importlib
import math
import os
import time
import uuid
import warnings

import numpy as np
from dask.sizeof import sizeof
from distributed import as_completed

from ._validation import as_k, as_positive_int, as_progress
from .cover_tree import CoverTree, _as_flag
from .telemetry import QueryReport

__all__ = ["DistributedKnnError", "WorkerMemoryWarning", "knn", "knn_report", "merge_reports",
           "scatter_tree", "trimmed_workers"]

# Blocks per worker by default: enough to balance uneven blocks and to lose little work when
# a worker dies, few enough that task overhead (milliseconds each) stays small.
BLOCKS_PER_WORKER = 16
DEFAULT_RETRIES = 2


# Dask's nanny sets this for every worker it starts (distributed.nanny.pre-spawn-environ).
# Setting it turns off glibc's adaptive mmap threshold, so each tile output of a walk, a few
# MB, is mapped afresh and faulted in page by page.
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"


class DistributedKnnError(RuntimeError):
    """A block of a distributed kNN run failed on the cluster; no result is returned."""


class WorkerMemoryWarning(RuntimeWarning):
    """Workers of the cluster run with MALLOC_TRIM_THRESHOLD_ set, which slows kNN walks on
    them (docs/distributed.md, "Worker memory settings")."""


def trimmed_workers(client) -> dict[str, str]:
    """{worker address: value} of the workers of the Dask ``client`` whose environment sets
    MALLOC_TRIM_THRESHOLD_; empty when none does."""
    values = client.run(_environ_value, TRIM_VARIABLE)
    return {worker: value for worker, value in sorted(values.items()) if value is not None}


def scatter_tree(client, tree: CoverTree, *, direct: bool | None = None):
    """Send the fitted ``tree`` to every worker of ``client`` once; returns the Future to pass
    as ``knn(..., tree_future=...)`` to reuse it over several runs (release it with
    ``client.cancel(future)`` or by dropping it). The tree travels once from the client
    (through the scheduler, or straight to a worker with direct=True, see
    ``Client.scatter``) and is then copied between workers."""
    if not isinstance(tree, CoverTree):
        raise TypeError(f"tree must be a fitted covertreex.CoverTree, got {type(tree).__name__}")
    tree._fitted()
    trimmed = trimmed_workers(client)
    if trimmed:
        shown = ", ".join(f"{worker} ({value})" for worker, value in list(trimmed.items())[:3])
        warnings.warn(WorkerMemoryWarning(
            f"covertreex.distributed: {len(trimmed)} worker(s) run with {TRIM_VARIABLE} set "
            f"({shown}), Dask's default, which makes kNN walks markedly slower on them; start "
            f"the workers with it unset, e.g. dask.config.set({{'distributed.nanny."
            f"pre-spawn-environ.{TRIM_VARIABLE}': None}}) before creating the cluster "
            f"(docs/distributed.md, \"Worker memory settings\")"), stacklevel=2)
    # Dask measures data when it arrives: the workers need this module's sizeof of a tree first.
    client.run(importlib.import_module, __name__)
    return client.scatter(tree, broadcast=True, hash=False, direct=direct)


def _environ_value(name: str):
    """On a worker: its environment variable ``name``, or None."""
    return os.environ.get(name)


@sizeof.register(CoverTree)
def _tree_nbytes(tree: CoverTree) -> int:
    """Bytes a tree holds in memory (each array once), so that Dask's memory accounting sees
    the scattered tree as large as it is rather than as a small Python object."""
    seen, total, stack = set(), 0, [tree.arrays, tree.metric, tree.layout, tree._coords]
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += obj.nbytes
        elif isinstance(obj, tuple):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return total + 1024


def knn(tree: CoverTree, queries, k, *, client, return_distances: bool = False,
        predecessor_mode: bool = False, block_rows: int | None = None, tree_future=None,
        retries: int = DEFAULT_RETRIES, progress=None):
    """``tree.knn(queries, k, ...)`` computed on the workers of the Dask ``client``.

    Returns idx (q, k) int64, and dist (q, k) float64 if return_distances, equal bit for bit
    to the local call's. See ``knn_report`` for the other arguments.
    """
    return_distances = _as_flag(return_distances, "return_distances")
    idx, dist, _ = knn_report(tree, queries, k, client=client, predecessor_mode=predecessor_mode,
                              block_rows=block_rows, tree_future=tree_future, retries=retries,
                              progress=progress)
    return (idx, dist) if return_distances else idx


def knn_report(tree: CoverTree, queries, k, *, client, predecessor_mode: bool = False,
               block_rows: int | None = None, tree_future=None, retries: int = DEFAULT_RETRIES,
               return_blocks: bool = False, progress=None):
    """``tree.knn_report(queries, k, ...)`` computed on the workers of the Dask ``client``.

    queries, k, predecessor_mode: as for ``CoverTree.knn_report`` (residual: (q,) ids or None;
    euclidean: (q, d) points, or None for every fitted point excluding itself).
    block_rows: rows per task (None: ceil(q / (4 * workers))); with the blocked traversal it
    is rounded up to a multiple of ``tree.runtime.query_block`` (see the module docstring).
    tree_future: a ``scatter_tree`` Future of this tree to reuse; None scatters the tree for
    this call and releases it afterwards. retries: re-runs of a task that raised.
    progress: optional callable(done, q) called in this thread with the rows of the blocks
    finished on the cluster so far, as each finishes; the last call has done == q.
    Returns idx (q, k) int64, dist (q, k) float64 and a QueryReport merging the blocks'
    (``merge_reports``; query_wall_ms is this call's wall time), plus with return_blocks the
    list of the blocks' own QueryReports in row order of the walk.
    Raises DistributedKnnError when a block fails on the cluster.
    """
    start = time.perf_counter()
    if not isinstance(tree, CoverTree):
        raise TypeError(f"tree must be a fitted covertreex.CoverTree, got {type(tree).__name__}")
    n = tree._fitted().n
    predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
    return_blocks = _as_flag(return_blocks, "return_blocks")
    progress = as_progress(progress, "done, q")
    retries = int(retries)
    qdata, rows, qcoords = tree._query_rows(queries, predecessor_mode)
    q = rows.ids.shape[0]
    k = as_k(k, q, n)
    own_ids = queries is None or tree.metric.name == "residual_correlation"
    order = tree._walk_order(rows.ids, qcoords, predecessor_mode)
    order = np.arange(q, dtype=np.int64) if order is None else order
    cuts = _cuts(q, _block_rows(tree, q, block_rows, client))
    payload = rows.ids if own_ids else qdata
    scattered = tree_future if tree_future is not None else scatter_tree(client, tree)
    run = uuid.uuid4().hex[:12]
    # In predecessor mode a block's cost grows with its ids, and the blocks come in id order:
    # the dearest start first (Dask runs higher priorities first), so no worker is left with
    # a long block at the end while the others idle.
    futures = [client.submit(_knn_block, scattered, payload[order[a:b]], k, predecessor_mode,
                             own_ids, key=f"covertreex-knn-{run}-{i}", pure=False,
                             retries=retries, priority=i if predecessor_mode else 0)
               for i, (a, b) in enumerate(cuts)]
    try:
        results = _gather(client, futures, cuts, progress)
    finally:
        if tree_future is None:
            client.cancel([scattered])
    idx = np.empty((q, k), dtype=np.int64)
    dist = np.empty((q, k), dtype=np.float64)
    for (a, b), (bidx, bdist, _) in zip(cuts, results):
        idx[order[a:b]] = bidx
        dist[order[a:b]] = bdist
    blocks = [report for _, _, report in results]
    report = merge_reports(blocks, (time.perf_counter() - start) * 1e3)
    return (idx, dist, report, blocks) if return_blocks else (idx, dist, report)


def merge_reports(reports, query_wall_ms: float) -> QueryReport:
    """One QueryReport for a run made of ``reports`` (at least one, same metric, k and mode):
    queries, pairs and tile counters summed (tile milliseconds are thread time, as locally),
    query_wall_ms as given."""
    first = reports[0]
    total = {name: sum(getattr(r, name) for r in reports)
             for name in ("queries", "pairs_evaluated", "whitened_block_pairs",
                          "whitened_block_ms", "kernel_provider_pairs", "kernel_provider_ms")}
    return QueryReport(metric=first.metric, k=first.k, predecessor_mode=first.predecessor_mode,
                       query_wall_ms=float(query_wall_ms), **total)


def _knn_block(tree: CoverTree, rows: np.ndarray, k: int, predecessor_mode: bool, own_ids: bool):
    """One task: (idx (b, k) int64, dist (b, k) float64, QueryReport) of the rows (b,) ids or
    (b, d) points, walked in the order given."""
    return tree._knn_report_block(rows, k, predecessor_mode=predecessor_mode, own_ids=own_ids)


def _block_rows(tree: CoverTree, q: int, block_rows, client) -> int:
    """Rows per task: block_rows or ceil(q / (BLOCKS_PER_WORKER * workers)), at least
    query_block, and a multiple of it for the blocked traversal."""
    step = tree.runtime.query_block
    if block_rows is None:
        workers = max(1, len(client.nthreads()))
        block_rows = max(step, math.ceil(q / (BLOCKS_PER_WORKER * workers)))
    else:
        block_rows = as_positive_int(block_rows, "block_rows")
    if tree.runtime.plan.walk.traversal == "blocked":
        block_rows = step * math.ceil(block_rows / step)
    return block_rows


def _cuts(q: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, q)) for a in range(0, q, size)]


def _gather(client, futures, cuts, progress=None):
    """The futures' results in order, or DistributedKnnError naming the first failed block;
    progress(done rows, q) as blocks finish, if not None."""
    try:
        if progress is None:
            return client.gather(futures, errors="raise")
        index = {future.key: i for i, future in enumerate(futures)}
        results = [None] * len(futures)
        done = 0
        # A failed block raises here, as gather would.
        for future, result in as_completed(futures, with_results=True):
            i = index[future.key]
            results[i] = result
            done += cuts[i][1] - cuts[i][0]
            progress(done, cuts[-1][1])
        return results
    except BaseException as exc:
        client.cancel(futures)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        failed = next((i for i, f in enumerate(futures) if f.status in ("error", "lost")), None)
        where = f"one of {len(futures)} blocks"
        if failed is not None:
            where = (f"block {failed} of {len(futures)} (walk-order rows {cuts[failed][0]} to "
                     f"{cuts[failed][1] - 1})")
        raise DistributedKnnError(
            f"covertreex.distributed: {where} failed on the cluster, so no result is returned: "
            f"{type(exc).__name__}: {exc}") from exc
