"""CoverTree: the public, immutable index."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from . import persist
from ._validation import as_ids, as_k, as_points, as_progress
from .engine.layout import Layout, make_layout
from .engine.walk import Rows
from .insert.insert import build_tree
from .insert.order import hilbert_keys, insertion_order
from .metrics.euclidean import EuclideanMetric
from .metrics.residual.backend import ResidualBackend
from .metrics.residual.metric import ResidualMetric
from .query.knn import knn_search
from .query.seeds import seed_candidates
from .runtime import Runtime, auto_brute
from .telemetry import (KP_MS, KP_PAIRS, WB_MS, WB_PAIRS, BuildReport, QueryReport, new_counters,
                        settle)
from .threads import default_threads, thread_limits
from .tree import TreeArrays


# Predecessor mode reorders runs of consecutive ids in space; a run is about 1/8 as long as
# the ids before it. Longer runs give a block closer rows, but rows of more different limits
# (perf/README.md, "Coherent query blocks").
COHERENT_RUN_GROWTH = 8


def _make_metric(runtime: Runtime, data):
    if runtime.metric == "residual_correlation":
        if not isinstance(data, ResidualBackend):
            raise TypeError(
                "a residual_correlation tree is fitted on a ResidualBackend, got "
                f"{type(data).__name__}; build one with "
                "covertreex.metrics.residual.build_residual_backend(coords)"
            )
        return ResidualMetric(data, runtime.plan.tiles), data.coords
    if isinstance(data, ResidualBackend):
        raise TypeError(
            "a euclidean tree is fitted on an (n, d) array, got a ResidualBackend; "
            'use Runtime(metric="residual_correlation") for the residual metric'
        )
    points = as_points(data, "points").copy()
    points.setflags(write=False)
    return EuclideanMetric(points), points


def _as_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclass(frozen=True, eq=False)
class CoverTree:
    """Exact kNN index over a compressed cover tree.

    ``CoverTree(runtime).fit(data)`` returns a new fitted tree and leaves the unfitted
    one as it was; a fitted tree never changes.
    """

    runtime: Runtime = Runtime()
    arrays: TreeArrays | None = None
    metric: object = None
    build_report: BuildReport | None = None
    layout: Layout | None = None
    _coords: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.runtime, Runtime):
            raise TypeError(f"runtime must be a covertreex.Runtime, got {type(self.runtime).__name__}")

    @property
    def n(self) -> int:
        return self._fitted().n

    def fit(self, data, *, progress=None, telemetry: bool = True) -> "CoverTree":
        """Build the tree on (n, d) points (euclidean) or a ResidualBackend (residual).

        progress: optional callable(placed, n) called after every insertion batch.
        telemetry: False records no per-batch figures (``build_report.batches`` is empty);
        only ``build_wall_ms`` is kept. It exists to measure what recording costs.
        """
        telemetry = _as_flag(telemetry, "telemetry")
        progress = as_progress(progress, "placed, n")
        metric, coords = _make_metric(self.runtime, data)
        plan = self.runtime.plan
        with thread_limits(plan.guard):
            start = time.perf_counter()
            order = insertion_order(plan.insert.batch_order, coords, plan.insert.seed)
            arrays, batches = build_tree(metric, order, plan, progress, telemetry)
            layout = None
            if plan.walk.traversal == "pointwise":
                layout = make_layout(metric, arrays.view(), arrays.n, with_runs=True)
            build_wall_ms = (time.perf_counter() - start) * 1e3
        report = BuildReport(metric=metric.name, n=arrays.n, phases=self.runtime.phases.as_dict(),
                             build_wall_ms=build_wall_ms, batches=batches)
        return replace(self, arrays=arrays, metric=metric, build_report=report, layout=layout,
                       _coords=coords)

    def _fitted(self) -> TreeArrays:
        if self.arrays is None:
            raise ValueError("this CoverTree is not fitted; call tree = CoverTree(runtime).fit(data) first")
        return self.arrays

    def save(self, path) -> None:
        """Write the fitted tree to ``path`` (str or os.PathLike, used as given) as one .npz
        file, atomically; ``CoverTree.load(path)`` reads it back. Raises ValueError for an
        unfitted tree and OSError naming ``path`` when it cannot be written. The format is
        described in ``covertreex.persist``."""
        persist.save(self, path)

    @classmethod
    def load(cls, path) -> "CoverTree":
        """The fitted tree saved at ``path`` by ``save``: it answers bit for bit as the saved
        tree did. Raises FileNotFoundError for a missing file and ValueError naming the file
        for a truncated, foreign or newer-version file."""
        return cls(**persist.load(path))

    def __reduce__(self):
        # Pickle (Dask ships trees this way) the saved form's arrays, not the derived metric
        # data and layout, which the unpickling side rebuilds as ``load`` does.
        if self.arrays is None:
            return type(self), (self.runtime,)
        return persist.unpickle, (type(self), *persist.tree_state(self))

    def distance_matrix(self, rows, cols) -> np.ndarray:
        """(len(rows), len(cols)) float64 tree-metric distances between dataset ids."""
        n = self._fitted().n
        rows = as_ids(rows, "rows", n)
        cols = as_ids(cols, "cols", n)
        return self.metric.tile(self.metric.data, rows, cols)

    def knn(self, queries, k, *, return_distances: bool = False, predecessor_mode: bool = False,
            progress=None):
        """Exact k nearest neighbours; see ``knn_report`` for the arguments.

        Returns idx (q, k) int64, and dist (q, k) float64 if return_distances.
        """
        return_distances = _as_flag(return_distances, "return_distances")
        idx, dist, _ = self.knn_report(queries, k, predecessor_mode=predecessor_mode,
                                       progress=progress)
        return (idx, dist) if return_distances else idx

    def knn_report(self, queries, k, *, predecessor_mode: bool = False, progress=None):
        """Exact k nearest neighbours.

        queries: euclidean, (q, d) points, or None for every fitted point (each point is
        excluded from its own list); residual, (q,) dataset ids, or None for every point
        (a query id is never its own neighbour). predecessor_mode: row i only takes
        neighbours j < i (queries must then be None or ids). progress: optional
        callable(done, q) called in this thread with the rows answered so far, increasing,
        the last call with done == q: as each block of the blocked traversal completes, after
        each slice of rows of the pointwise traversal (which the callback makes walk its rows
        in a few successive parallel runs). Results do not depend on it. Returns idx (q, k)
        int64, dist (q, k) float64 and a telemetry ``QueryReport``; rows are sorted by
        (distance, id) and padded with -1 / inf when fewer than k candidates exist.
        """
        start = time.perf_counter()
        self._fitted()
        predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
        progress = as_progress(progress, "done, q")
        qdata, rows, qcoords = self._query_rows(queries, predecessor_mode)
        k = as_k(k, rows.ids.shape[0], self.arrays.n)
        perm = self._walk_order(rows.ids, qcoords, predecessor_mode)
        return self._search(qdata, rows, qcoords, perm, k, predecessor_mode, start, progress)

    def _knn_report_block(self, queries, k, *, predecessor_mode: bool = False,
                          own_ids: bool = False):
        """``knn_report`` for one part of a larger run (``covertreex.distributed``). queries:
        as for ``knn_report``, or with own_ids=True (q,) int64 ids of fitted points, each
        querying as in queries=None (itself excluded; predecessor mode: ids below its own),
        for either metric. Rows are walked in the order given, not re-sorted: the caller
        orders the whole run with ``_walk_order`` and cuts it at multiples of query_block,
        so every block, hence every tile and distance bit, is the one of the whole run."""
        start = time.perf_counter()
        arrays = self._fitted()
        predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
        if own_ids:
            qdata, rows, qcoords = self._id_rows(as_ids(queries, "queries", arrays.n),
                                                 predecessor_mode)
        else:
            qdata, rows, qcoords = self._query_rows(queries, predecessor_mode)
        k = as_k(k, rows.ids.shape[0], arrays.n)
        return self._search(qdata, rows, qcoords, None, k, predecessor_mode, start)

    def _walk_order(self, ids, qcoords, predecessor_mode: bool):
        """The order (q,) int64 in which the blocked traversal takes rows with dataset ids
        ``ids`` (q,) and coordinates ``qcoords`` (q, d); None for the pointwise traversal."""
        plan = self.runtime.plan.walk
        if plan.traversal == "blocked" and predecessor_mode:
            # Id limits prune much: rows of nearby ids share them, so runs of consecutive
            # ids are walked together. Within a run, Hilbert order puts rows close in space
            # side by side, so the halves a splitting block walks on (query_split) share
            # their frontiers (docs/design.md, "Queries").
            by_id = np.argsort(ids, kind="stable")
            if not plan.split:
                return by_id
            # Rows answered by brute force (query_brute) come first, in id order: a scanned
            # block costs its largest limit a row, so its limits should be close.
            brute = self._brute_limit()
            scanned = int(np.count_nonzero(ids <= brute)) if brute else 0
            # Runs grow with the ids before them, by about one part in COHERENT_RUN_GROWTH:
            # the limits inside a run then differ by that share at most.
            rank = np.arange(by_id.shape[0]) / plan.block
            run = np.empty_like(by_id)
            run[by_id] = np.floor(np.log1p(rank) / np.log1p(1.0 / COHERENT_RUN_GROWTH))
            run[by_id[:scanned]] = -1
            space = hilbert_keys(qcoords)
            space[by_id[:scanned]] = 0
            return np.lexsort((ids, space, run))
        if plan.traversal == "blocked":
            # Neighbouring queries share most of their frontier: walk them in Hilbert order.
            return np.argsort(hilbert_keys(qcoords), kind="stable")
        return None

    def _brute_limit(self) -> int:
        """The largest limit of a predecessor-mode row answered by brute force."""
        brute = self.runtime.plan.walk.brute
        return auto_brute(self.metric.name, self.arrays.n) if brute is None else brute

    def _search(self, qdata, rows, qcoords, perm, k, predecessor_mode: bool, start: float,
                progress=None):
        """knn_report's search for the validated k nearest of ``rows`` (a ``Rows``, with
        coordinates qcoords (q, d)) taken in the order ``perm`` (or as given), reporting to
        ``progress``; results in the rows' order."""
        arrays = self.arrays
        plan = self.runtime.plan.walk
        if perm is not None:
            rows = Rows(*(a[perm] for a in rows))
            qcoords = qcoords[perm]
        counters = new_counters()
        with thread_limits(self.runtime.plan.guard):
            scan_limit = self._brute_limit() if predecessor_mode else 0
            seeds = None
            if plan.traversal == "blocked" and plan.seeds:
                # Seeds depend on each row alone, so any cut of the rows into blocks or Dask
                # partitions walks from the same heaps. Rows that may be scanned need none.
                seeds = np.full((rows.ids.shape[0], plan.seeds * k), -1, dtype=np.int64)
                walked = rows.limit > scan_limit
                seeds[walked] = seed_candidates(self._coords, qcoords[walked], rows.limit[walked],
                                                rows.exclude[walked], plan.seeds * k,
                                                plan.workers or default_threads())
            (idx, dist), pairs = knn_search(plan, arrays.view(), self.layout, self.metric, qdata,
                                            rows, k, counters, progress, seeds, scan_limit)
        settle(counters)
        if perm is not None:
            inv = np.empty_like(perm)
            inv[perm] = np.arange(perm.shape[0])
            idx, dist = idx[inv], dist[inv]
        report = QueryReport(
            metric=self.metric.name, queries=int(rows.ids.shape[0]), k=k,
            predecessor_mode=predecessor_mode,
            query_wall_ms=(time.perf_counter() - start) * 1e3, pairs_evaluated=int(pairs.sum()),
            whitened_block_pairs=int(counters[WB_PAIRS]), whitened_block_ms=float(counters[WB_MS]),
            kernel_provider_pairs=int(counters[KP_PAIRS]), kernel_provider_ms=float(counters[KP_MS]))
        return idx, dist, report

    def _query_rows(self, queries, predecessor_mode: bool):
        """(query-side metric data, ``Rows`` of the queries, their coordinates (q, d)) for
        ``knn_report``'s arguments, validated."""
        n = self.arrays.n
        if queries is None or self.metric.name == "residual_correlation":
            ids = np.arange(n, dtype=np.int64) if queries is None else as_ids(queries, "queries", n)
            return self._id_rows(ids, predecessor_mode)
        if predecessor_mode:
            raise ValueError(
                "predecessor_mode=True needs queries=None (every fitted point, point i taking "
                "neighbours j < i); it is undefined for new query points"
            )
        qdata = as_points(queries, "queries")
        if qdata.shape[1] != self._coords.shape[1]:
            raise ValueError(
                f"queries have d={qdata.shape[1]} columns but the tree was fitted on "
                f"d={self._coords.shape[1]}"
            )
        q = qdata.shape[0]
        rows = Rows(np.arange(q, dtype=np.int64), np.full(q, -1, dtype=np.int64),
                    np.full(q, n, dtype=np.int64))
        return qdata, rows, qdata

    def _id_rows(self, ids, predecessor_mode: bool):
        """``_query_rows`` of the fitted points ``ids`` (q,) int64, each excluded from its own
        list (predecessor mode: limited to ids below its own)."""
        n = self.arrays.n
        limit = ids.copy() if predecessor_mode else np.full(ids.shape[0], n, dtype=np.int64)
        return self.metric.data, Rows(ids, ids, limit), self._coords[ids]
