"""The residual-correlation metric: its per-point data, tiles from Python, and pruning slack.

docs/design.md, "The residual-correlation metric", gives the definitions; the Numba kernels
are in ``tile_kernels``.
"""

from __future__ import annotations

import math
import time
from collections import namedtuple

import numpy as np

from ...telemetry import KP_MS, KP_PAIRS, WB_MS, WB_PAIRS
from ..protocol import ALL_PAIRS, MetricKernels
from .backend import ResidualBackend
from .tile_kernels import (TILE_CHUNK, finish_chunk, gram_by_pairs, residual_pair,
                           residual_tile_kernel)

# What the residual kernels read, as one struct. xs (n, d) coordinates over the lengthscale;
# v (n, m) whitened V; inv_sqrt_p (n,) 1/sqrt(p); s2, code: the kernel's variance and
# profile; centred (n, d) and sq_norms (n,): centred xs and its squared norms (GEMM kernel
# tiles); gemm_v, gemm_k: the tile plan's block_gemm and gemm_kernel_provider; f32_on: some
# row is float32-staged; v32 (n, m) or (0, m), f32_scale (n,), f32_ok (n,), f32_coef: the
# float32 path's data (see ``_float32_staging``); audit: recheck float32 decisions.
ResidualData = namedtuple("ResidualData", [
    "xs", "v", "inv_sqrt_p", "s2", "code", "centred", "sq_norms", "gemm_v", "gemm_k",
    "f32_on", "v32", "f32_scale", "f32_ok", "f32_coef", "audit"])

# One traversal thread's scratch for ``residual_tile_kernel`` on up to ``block`` rows:
# gathered V and centred coordinates of the rows, v_rows (block, m) and c_rows (block, d),
# centred coordinates of one column chunk, c_cols (chunk, d) (the chunk's V is read where it
# lies, see ``gram_direct``); (block * chunk,) buffers
# for the V Gram block, the coordinate cross term and the kernel values; with float32
# staging, float32 copies of the V buffers and of the Gram block (empty otherwise).
TileWorkspace = namedtuple("TileWorkspace", [
    "v_rows", "c_rows", "c_cols", "gram", "cross", "kern", "v32_rows", "v32_cols",
    "gram32"])

RESIDUAL_KERNELS = MetricKernels("residual_correlation", residual_pair, residual_tile_kernel)


def exact_thresholds(rows, cols):
    """Pruning thresholds (row_thr, col_thr) of +inf: a tile computed with them is exact
    float64 everywhere (float32 staging decides nothing)."""
    return np.full(rows.shape[0], np.inf), np.full(cols.shape[0], np.inf)


def tile_workspace(data: ResidualData, block: int, chunk: int = TILE_CHUNK) -> TileWorkspace:
    """A ``TileWorkspace`` for tiles of up to ``block`` rows of the metric with ``data``."""
    m, d = data.v.shape[1], data.xs.shape[1]
    b32, c32 = (block, chunk) if data.f32_on else (0, 0)
    return TileWorkspace(
        np.empty((block, m)), np.empty((block, d)), np.empty((chunk, d)),
        np.empty(block * chunk), np.empty(block * chunk), np.empty(block * chunk),
        np.empty((b32, m), dtype=np.float32), np.empty((c32, m), dtype=np.float32),
        np.empty(b32 * c32, dtype=np.float32))


# A row is float32-staged when its worst-case rho error against a median point,
# coef |V_i|/sqrt(p_i) median(|V_j|/sqrt(p_j)), is at most this: then most of its pairs
# are decided in float32. Rows with tiny p (d = 3 with many inducing points, p ~ 2e-6)
# fail it by orders of magnitude and run in float64 from the start.
F32_ROW_RHO_ERROR = 1e-3


def _float32_staging(v, p, enabled: bool):
    """(V in float32 (n, m) or (0, m), scale |V_i| / sqrt(p_i) (n,), staged rows (n,) bool,
    coef): the data of the float32 path (see ``_finish_chunk_f32``)."""
    n, m = v.shape
    coef = 1.01 * (m + 2) * (2.0 ** -24 + 2.0 * 2.0 ** -53)
    scale = np.sqrt(np.einsum("ij,ij->i", v, v) / p)
    ok = np.zeros(n, dtype=np.bool_)
    if enabled:
        ok = coef * scale * float(np.median(scale)) <= F32_ROW_RHO_ERROR
    v32 = v.astype(np.float32) if ok.any() else np.empty((0, m), dtype=np.float32)
    return v32, scale, ok, float(coef)


def _prune_slack(v, p, sq_norms, d: int, s2: float) -> float:
    """Absolute slack on pruning bounds. float64 evaluates |rho| to within
    delta = eps [(m + 1) |V_i||V_j| + s2 (8 + 2 (d + 2)(|a_i|^2 + |a_j|^2))] / sqrt(p_i p_j)
    (dot product over m terms, the GEMM-form kernel tile on centred coordinates a, a few
    ulps for exp and products), and sqrt turns that into at most sqrt(delta) in d
    (|sqrt x - sqrt y| <= sqrt|x - y|). Bounds built from two computed distances are
    loosened by twice that, taken at its worst over the data."""
    eps = np.finfo(np.float64).eps
    m = v.shape[1]
    vmax = float(np.einsum("ij,ij->i", v, v).max())
    amax = float(sq_norms.max())
    delta = eps * ((m + 1) * vmax + s2 * (8 + 4 * (d + 2) * amax)) / float(p.min())
    return float(min(1.0, 2.0 * math.sqrt(delta)))


class ResidualMetric:
    """Residual-correlation distances between dataset ids of one backend.

    Tiles follow the ``TilePlan``: ``block_gemm`` takes V_Q V_T^T from one GEMM (else a
    dot product per pair); ``gemm_kernel_provider`` forms the kernel tile from
    |a|^2 + |b|^2 - 2ab on cached centred coordinates and norms (else a broadcast
    (rows x cols x d) difference tensor); ``float32_staging`` keeps a float32 copy of V for
    the rows ``f32_ok`` marks, used by the nopython tiles only; ``float32_audit``
    recomputes every pair float32 decided, raising on a wrong decision.
    """

    name = "residual_correlation"
    kernels = RESIDUAL_KERNELS

    def __init__(self, backend: ResidualBackend, plan):
        """backend: the fitted ``ResidualBackend``; plan: a ``runtime.TilePlan``."""
        self.backend = backend
        self.plan = plan
        self.n = backend.n
        self.kernel = backend.kernel
        xs = backend.kernel.scale(backend.coords)
        self.v = np.ascontiguousarray(backend.v_matrix)
        self.p = np.ascontiguousarray(backend.p_diag)
        # Centring shrinks |a|^2 + |b|^2, the scale of the GEMM form's cancellation error.
        self.centred = np.ascontiguousarray(xs - xs.mean(axis=0))
        self.sq_norms = np.einsum("ij,ij->i", self.centred, self.centred)
        v32, f32_scale, f32_ok, f32_coef = _float32_staging(self.v, self.p, plan.float32_staging)
        self.inv_sqrt_p = 1.0 / np.sqrt(self.p)
        for arr in (xs, self.centred, self.sq_norms, self.inv_sqrt_p, v32, f32_scale, f32_ok):
            arr.setflags(write=False)
        self.data = ResidualData(
            xs=xs, v=self.v, inv_sqrt_p=self.inv_sqrt_p, s2=float(backend.kernel.variance),
            code=int(backend.kernel.code), centred=self.centred, sq_norms=self.sq_norms,
            gemm_v=bool(plan.block_gemm), gemm_k=bool(plan.gemm_kernel_provider),
            f32_on=bool(f32_ok.any()), v32=v32, f32_scale=f32_scale, f32_ok=f32_ok,
            f32_coef=f32_coef, audit=bool(plan.float32_audit))
        self.prune_slack = _prune_slack(self.v, self.p, self.sq_norms, xs.shape[1],
                                        float(backend.kernel.variance))

    def workspace(self, block: int):
        """Scratch arrays for one traversal thread's tiles of up to ``block`` rows."""
        return tile_workspace(self.data, block)

    def kernel_tile(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) float64 kernel values k(x_rows, x_cols)."""
        if self.plan.gemm_kernel_provider:
            a = self.centred[rows]
            r2 = a @ self.centred[cols].T
            r2 *= -2.0
            r2 += self.sq_norms[rows, None]
            r2 += self.sq_norms[None, cols]
            np.maximum(r2, 0.0, out=r2)
        else:
            xs = self.data.xs
            diff = xs[rows][:, None, :] - xs[cols][None, :, :]
            r2 = np.einsum("abc,abc->ab", diff, diff)
        return self.kernel.profile(r2, out=r2)

    def tile(self, qdata, rows: np.ndarray, cols: np.ndarray, counters=None) -> np.ndarray:
        """(len(rows), len(cols)) float64 distances between dataset ids rows and cols.

        counters: optional telemetry array (see covertreex.telemetry; empty for none) that gets the
        pairs and milliseconds of the whitened block (V part and distance pass) and of
        the kernel provider.
        """
        t0 = time.perf_counter()
        if self.plan.block_gemm:
            gram = self.v[rows] @ self.v[cols].T
        else:
            gram = np.empty((rows.shape[0], cols.shape[0]))
            gram_by_pairs(self.v, rows, cols, gram)
        t1 = time.perf_counter()
        ktile = self.kernel_tile(rows, cols)
        t2 = time.perf_counter()
        finish_chunk(self.inv_sqrt_p, rows, np.arange(rows.shape[0]), cols, ktile, gram,
                      ALL_PAIRS, 0, gram)
        if counters is not None and counters.size:
            pairs = rows.shape[0] * cols.shape[0]
            counters[WB_PAIRS] += pairs
            counters[WB_MS] += (t1 - t0 + time.perf_counter() - t2) * 1e3
            counters[KP_PAIRS] += pairs
            counters[KP_MS] += (t2 - t1) * 1e3
        return gram
