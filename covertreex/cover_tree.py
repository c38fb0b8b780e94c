"""CoverTree: the public, immutable index."""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, replace

import numpy as np

from ._validation import as_ids, as_points, as_positive_int
from .insert.insert import build_tree
from .insert.order import hilbert_keys, insertion_order
from .metrics.euclidean import EuclideanMetric
from .metrics.residual.backend import ResidualBackend
from .metrics.residual.metric import ResidualMetric
from .engine.layout import Layout, make_layout
from .query.knn import knn_search
from .runtime import Runtime
from .threads import thread_limits
from .telemetry import (KP_MS, KP_PAIRS, WB_MS, WB_PAIRS, BuildReport, QueryReport, new_counters,
                        settle)
from .tree import TreeArrays


def _make_metric(runtime: Runtime, data):
    if runtime.metric == "residual_correlation":
        if not isinstance(data, ResidualBackend):
            raise TypeError(
                "a residual_correlation tree is fitted on a ResidualBackend, got "
                f"{type(data).__name__}; build one with "
                "covertreex.metrics.residual.build_residual_backend(coords)"
            )
        return ResidualMetric(data, runtime.phases, runtime.float32_audit), data.coords
    if isinstance(data, ResidualBackend):
        raise TypeError(
            "a euclidean tree is fitted on an (n, d) array, got a ResidualBackend; "
            'use Runtime(metric="residual_correlation") for the residual metric'
        )
    points = as_points(data, "points").copy()
    points.setflags(write=False)
    return EuclideanMetric(points, runtime.phases), points


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
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a callable(placed, n) or None, got {progress!r}")
        metric, coords = _make_metric(self.runtime, data)
        guard = self.runtime.phases.thread_guard
        with thread_limits(self.runtime.threads, enabled=guard):
            start = time.perf_counter()
            order = insertion_order(self.runtime.batch_order, coords, self.runtime.seed)
            arrays, batches = build_tree(metric, order, self.runtime, progress, telemetry)
            layout = None
            if self.runtime.traversal == "pointwise":
                layout = make_layout(metric, arrays.root, arrays.child_ptr, arrays.child_idx,
                                     arrays.n, arrays.levels, arrays.radii, arrays.min_id_below,
                                     with_runs=True)
            build_wall_ms = (time.perf_counter() - start) * 1e3
        report = BuildReport(metric=metric.name, n=arrays.n, phases=self.runtime.phases.as_dict(),
                             build_wall_ms=build_wall_ms, batches=batches)
        return replace(self, arrays=arrays, metric=metric, build_report=report, layout=layout,
                       _coords=coords)

    def _fitted(self) -> TreeArrays:
        if self.arrays is None:
            raise ValueError("this CoverTree is not fitted; call tree = CoverTree(runtime).fit(data) first")
        return self.arrays

    def distance_matrix(self, rows, cols) -> np.ndarray:
        """(len(rows), len(cols)) float64 tree-metric distances between dataset ids."""
        n = self._fitted().n
        rows = as_ids(rows, "rows", n)
        cols = as_ids(cols, "cols", n)
        return self.metric.tile(self.metric.data, rows, cols)

    def knn(self, queries, k, *, return_distances: bool = False, predecessor_mode: bool = False):
        """Exact k nearest neighbours; see ``knn_report`` for the arguments.

        Returns idx (q, k) int64, and dist (q, k) float64 if return_distances.
        """
        return_distances = _as_flag(return_distances, "return_distances")
        idx, dist, _ = self.knn_report(queries, k, predecessor_mode=predecessor_mode)
        return (idx, dist) if return_distances else idx

    def knn_report(self, queries, k, *, predecessor_mode: bool = False):
        """Exact k nearest neighbours.

        queries: euclidean, (q, d) points, or None for every fitted point (each point is
        excluded from its own list); residual, (q,) dataset ids, or None for every point
        (a query id is never its own neighbour). predecessor_mode: row i only takes
        neighbours j < i (queries must then be None or ids). Returns idx (q, k) int64,
        dist (q, k) float64 and a telemetry ``QueryReport``; rows are sorted by
        (distance, id) and padded with -1 / inf when fewer than k candidates exist.
        """
        start = time.perf_counter()
        arrays = self._fitted()
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"k must be a positive integer, got {k!r} of type {type(k).__name__}")
        k = as_positive_int(k, "k")
        predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
        n = arrays.n
        metric = self.metric
        if queries is None or metric.name == "residual_correlation":
            rows = np.arange(n, dtype=np.int64) if queries is None else as_ids(queries, "queries", n)
            qdata, exclude = metric.data, rows
            qcoords = self._coords[rows]
        elif predecessor_mode:
            raise ValueError(
                "predecessor_mode=True needs queries=None (every fitted point, point i taking "
                "neighbours j < i); it is undefined for new query points"
            )
        else:
            qdata = as_points(queries, "queries")
            if qdata.shape[1] != self._coords.shape[1]:
                raise ValueError(
                    f"queries have d={qdata.shape[1]} columns but the tree was fitted on "
                    f"d={self._coords.shape[1]}"
                )
            rows = np.arange(qdata.shape[0], dtype=np.int64)
            exclude = np.full(rows.shape[0], -1, dtype=np.int64)
            qcoords = qdata
        limit = rows.copy() if predecessor_mode else np.full(rows.shape[0], n, dtype=np.int64)
        strategy = self.runtime.traversal
        perm = None
        if strategy == "blocked" and predecessor_mode:
            # Residual distances prune little, while id limits do: a block of consecutive ids
            # skips every subtree whose ids all exceed the block's, which saves more pairs
            # than the spatial coherence of Hilbert blocks does.
            perm = np.argsort(rows, kind="stable")
        elif strategy == "blocked":
            # Neighbouring queries share most of their frontier: walk them in Hilbert order.
            perm = np.argsort(hilbert_keys(qcoords), kind="stable")
        if perm is not None:
            rows, exclude, limit = rows[perm], exclude[perm], limit[perm]
        counters = new_counters()
        with thread_limits(self.runtime.threads, enabled=self.runtime.phases.thread_guard):
            (idx, dist), pairs = knn_search(strategy, arrays, self.layout, metric, qdata, rows,
                                            exclude, limit, k, self.runtime.query_block,
                                            self.runtime.threads, counters)
        settle(counters)
        if perm is not None:
            inv = np.empty_like(perm)
            inv[perm] = np.arange(perm.shape[0])
            idx, dist = idx[inv], dist[inv]
        report = QueryReport(
            metric=metric.name, queries=int(rows.shape[0]), k=k, predecessor_mode=predecessor_mode,
            query_wall_ms=(time.perf_counter() - start) * 1e3, pairs_evaluated=int(pairs.sum()),
            whitened_block_pairs=int(counters[WB_PAIRS]), whitened_block_ms=float(counters[WB_MS]),
            kernel_provider_pairs=int(counters[KP_PAIRS]), kernel_provider_ms=float(counters[KP_MS]))
        return idx, dist, report
