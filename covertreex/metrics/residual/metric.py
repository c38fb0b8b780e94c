"""Residual-correlation distance d = sqrt(1 - |rho|) as Numba pair and tile kernels.

The data tuple is (scaled coords (n, d), V (n, m), p (n,), s2, kernel code); see
DESIGN section 3. Tiles take ``V_Q V_T^T`` from one float64 GEMM and fuse the kernel
tile, the correlation and the square root in one Numba pass.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ...kernels import MATERN52_CODE
from .backend import ResidualBackend

_SQRT5 = math.sqrt(5.0)


@njit(nogil=True, inline="always")
def _kernel_value(xs, i, j, s2, code):
    r2 = 0.0
    for c in range(xs.shape[1]):
        diff = xs[i, c] - xs[j, c]
        r2 += diff * diff
    if code == MATERN52_CODE:
        r = math.sqrt(r2)
        return s2 * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r2) * math.exp(-_SQRT5 * r)
    return s2 * math.exp(-0.5 * r2)


@njit(nogil=True, inline="always")
def _distance_from_cov(cov, pi, pj):
    rho = cov / math.sqrt(pi * pj)
    a = abs(rho)
    if a >= 1.0:
        return 0.0
    return math.sqrt(1.0 - a)


@njit(nogil=True, inline="always")
def residual_pair(qdata, i, tdata, j):
    xs, v, p, s2, code = tdata
    dot = 0.0
    for t in range(v.shape[1]):
        dot += v[i, t] * v[j, t]
    return _distance_from_cov(_kernel_value(xs, i, j, s2, code) - dot, p[i], p[j])


@njit(nogil=True, parallel=True)
def _finish_tile(xs, p, s2, code, rows, cols, gram, out):
    """out[a, b] = d(rows[a], cols[b]) given gram[a, b] = V_rows[a] . V_cols[b]."""
    for a in prange(rows.shape[0]):
        i = rows[a]
        for b in range(cols.shape[0]):
            j = cols[b]
            out[a, b] = _distance_from_cov(_kernel_value(xs, i, j, s2, code) - gram[a, b], p[i], p[j])


class ResidualMetric:
    """Residual-correlation distances between dataset ids of one backend."""

    name = "residual_correlation"
    default_strategy = "blocked"
    pair = residual_pair

    def __init__(self, backend: ResidualBackend):
        self.backend = backend
        self.n = backend.n
        xs = backend.kernel.scale(backend.coords)
        self.v = np.ascontiguousarray(backend.v_matrix)
        self.p = np.ascontiguousarray(backend.p_diag)
        self.data = (xs, self.v, self.p, float(backend.kernel.variance), int(backend.kernel.code))
        # Absolute slack on pruning bounds. float64 evaluates 1 - |rho| to within
        # delta = O(eps * (s2 + |V|^2) / min p) and sqrt turns that into at most sqrt(delta)
        # in d (|sqrt a - sqrt b| <= sqrt|a - b|), so bounds built from computed distances
        # are loosened by that much to stay valid.
        vmax = float(np.einsum("ij,ij->i", self.v, self.v).max())
        delta = 64.0 * np.finfo(np.float64).eps * (backend.kernel.variance + vmax) / float(self.p.min())
        self.prune_slack = float(min(1.0, 2.0 * math.sqrt(delta)))

    def tile(self, qdata, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) float64 distances between dataset ids rows and cols."""
        gram = self.v[rows] @ self.v[cols].T
        out = np.empty_like(gram)
        xs, _, p, s2, code = self.data
        _finish_tile(xs, p, s2, code, rows, cols, gram, out)
        return out
