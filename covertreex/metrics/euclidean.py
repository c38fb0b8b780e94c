"""Euclidean metric over (n, d) float64 coordinates."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .distance_kernels import sq_distance, sq_distance_tile
from .protocol import MetricKernels


# sqrt is correctly rounded, so sqrt(s) <= d implies s <= d*d up to two roundings (2**-52
# relative): this margin keeps every such s.
_SQUARE_MARGIN = 1.0 + 1e-12


@njit(nogil=True, inline="always")
def euclidean_pair(qdata, i, tdata, j):
    return math.sqrt(sq_distance(qdata, i, tdata, j))


@njit(nogil=True, inline="always")
def distance_to_square(d):
    return d * d * _SQUARE_MARGIN


@njit(cache=True, nogil=True)
def euclidean_tile_kernel(qdata, tdata, rows, cols, active, row_thr, col_thr, workspace, counters):
    """(len(rows), len(cols)) distances in nopython mode for the pairs flagged in ``active``
    (b, f) (all when empty). Always exact (the pruning thresholds row_thr, col_thr are
    unused), needs no scratch (``workspace`` is unused) and leaves counters untouched (no
    whitened block or kernel to count)."""
    every = active.shape[0] == 0
    out = np.empty((rows.shape[0], cols.shape[0]))
    for a in range(rows.shape[0]):
        for b in range(cols.shape[0]):
            if every or active[a, b]:
                out[a, b] = euclidean_pair(qdata, rows[a], tdata, cols[b])
    return out


EUCLIDEAN_KERNELS = MetricKernels("euclidean", euclidean_pair, euclidean_tile_kernel,
                                  pair_key=sq_distance, key_to_distance=math.sqrt,
                                  distance_to_key=distance_to_square)


class EuclideanMetric:
    """Distances between rows of a query array and rows of the tree's (n, d) points."""

    name = "euclidean"
    kernels = EUCLIDEAN_KERNELS
    # Pair distances are exact to a few ulps; the relative term of may_descend covers them.
    prune_slack = 0.0

    def __init__(self, points: np.ndarray):
        """points: (n, d) float64, read-only."""
        self.data = points
        self.n = points.shape[0]

    def workspace(self, block: int):
        """Tiles here need no scratch arrays: an empty placeholder."""
        return np.empty(0)

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """Pair-kernel data of the points ``ids``, in that order."""
        return np.ascontiguousarray(self.data[ids])

    def tile(self, qdata, rows: np.ndarray, cols: np.ndarray, counters=None) -> np.ndarray:
        """(len(rows), len(cols)) float64 distances from qdata[rows] to points[cols].
        Euclidean tiles have no whitened block or kernel provider: counters stay as they are."""
        out = np.empty((rows.shape[0], cols.shape[0]))
        sq_distance_tile(qdata, rows, self.data, cols, out)
        return np.sqrt(out, out=out)
