"""Residual-correlation distance d = sqrt(1 - |rho|) as Numba pair and tile kernels.

The data tuple starts (scaled coords (n, d), V (n, m), 1/sqrt(p) (n,), s2, kernel code); see
DESIGN section 3. Tiles take ``V_Q V_T^T`` from one float64 GEMM and fuse the kernel
tile, the correlation and the square root in one Numba pass.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

from ...kernels import MATERN52_CODE
from ..._cycles import read_cycles
from ...engine.specialise import ALL_PAIRS, specialise
from ...telemetry import (F32_DECIDED, F32_REFINED, KP_MS, KP_PAIRS, KP_TICKS, WB_MS,
                          WB_PAIRS, WB_TICKS)
from ..distance_kernels import sq_distance
from .backend import ResidualBackend

_SQRT5 = math.sqrt(5.0)
# Columns per chunk of a nopython tile: a 256-row block's Gram chunk (256 x 512 float64,
# 1 MiB) stays in cache between the GEMM that writes it and the pass that reads it.
TILE_CHUNK = 512


@njit(nogil=True, inline="always")
def _profile(r2, s2, code):
    if code == MATERN52_CODE:
        r = math.sqrt(r2)
        return s2 * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r2) * math.exp(-_SQRT5 * r)
    return s2 * math.exp(-0.5 * r2)


@njit(nogil=True, inline="always")
def _distance_from_cov(cov, wi, wj):
    # w = 1 / sqrt(p), cached per point: two products instead of a square root and a division.
    rho = cov * wi * wj
    a = abs(rho)
    if a >= 1.0:
        return 0.0
    return math.sqrt(1.0 - a)


@njit(nogil=True, inline="always")
def _row_dot(v, i, j):
    dot = 0.0
    for t in range(v.shape[1]):
        dot += v[i, t] * v[j, t]
    return dot


@njit(nogil=True, inline="always")
def residual_pair(qdata, i, tdata, j):
    xs, v, w, s2, code = tdata[0], tdata[1], tdata[2], tdata[3], tdata[4]
    return _distance_from_cov(_profile(sq_distance(xs, i, xs, j), s2, code) - _row_dot(v, i, j),
                              w[i], w[j])


@njit(cache=True, nogil=True)
def gram_by_pairs(v, rows, cols, out):
    """out[a, b] = V[rows[a]] . V[cols[b]], one dot product per pair: the pre-audit
    path that phase 1 (block_gemm) replaces with a GEMM. Serial: walks already run one
    block per core (covertreex.engine.walk.walk_blocks)."""
    for a in range(rows.shape[0]):
        for b in range(cols.shape[0]):
            out[a, b] = _row_dot(v, rows[a], cols[b])


# A chunk with fewer flagged pairs than 1 in SPARSE_GRAM_DEN takes its V Gram entries one
# dot product per flagged pair instead of one GEMM for all pairs. In a one-off timing on
# this machine kind a 512-term dot product took 75-85 ns and a GEMM pair 15-20 ns (256 x 512
# chunks; loads, not multiplies, bound the dot product). Against a GEMM for every chunk,
# `perf/compare.py --base 5d69688 --preset gold-d3` gave builds 0.88x and queries 0.68x
# with 4 here, 0.95x and 0.78x with 8, 0.98x and 0.72x with 2.
SPARSE_GRAM_DEN = 4


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _gram_of_flagged(vq, pos, v, cols, active, c0, gram):
    """gram[r, b] = vq[r] . V[cols[b]] for the pairs (pos[r], c0 + b) flagged in active,
    others left unset; vq (len(pos), m) holds the rows' V. reassoc lets LLVM vectorise the
    sums: the error bound behind prune_slack holds for any order of summation, with or
    without fused multiply-adds."""
    m = v.shape[1]
    for r in range(pos.shape[0]):
        a = pos[r]
        for b in range(cols.shape[0]):
            if active[a, c0 + b]:
                j = cols[b]
                dot = 0.0
                for t in range(m):
                    dot += vq[r, t] * v[j, t]
                gram[r, b] = dot


@njit(cache=True, nogil=True)
def _count_flagged(active, c0, f):
    """Flagged pairs of active (b, :) in columns c0 .. c0 + f - 1."""
    flagged = 0
    for a in range(active.shape[0]):
        for c in range(f):
            flagged += active[a, c0 + c]
    return flagged


@njit(cache=True, nogil=True)
def _gather_into(a, ids, out):
    """out[r] = a[ids[r]] for r < len(ids); returns that leading part of out."""
    for r in range(ids.shape[0]):
        out[r] = a[ids[r]]
    return out[:ids.shape[0]]


_LOG2E = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for the k that occur (Cody and Waite).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@njit(cache=True, nogil=True)
def _exp_nonpos_inplace(x, bits):
    """x[i] <- exp(x[i]) for x (n,) float64 <= 0, within about 1 ulp, in two loops LLVM
    vectorises (libm's exp is a scalar call). bits: (>= n,) int64 scratch. Arguments below
    -700 give exp(-700) ~ 1e-304, an absolute error far under the kernel's rounding."""
    n = x.shape[0]
    for t in range(n):
        xt = max(x[t], -700.0)
        k = np.floor(xt * _LOG2E + 0.5)
        r = (xt - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln2 / 2: degree 13 leaves ~1e-18
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        x[t] = p * r + 1.0
        bits[t] = (np.int64(k) + 1023) << 52  # 2**k as float64 bits
    scale = bits[:n].view(np.float64)
    for t in range(n):
        x[t] *= scale[t]


@njit(cache=True, nogil=True)
def _kernel_into(xs, sq_norms, s2, code, rows, cols, cross, use_cross, active, c0, flagged,
                 out):
    """Kernel values of the flagged pairs (all when ``active`` is empty) of rows against
    cols, which are the tile's columns c0, c0 + 1, ...: r2 from the GEMM cross term on
    centred coordinates, or from differences. ``out`` is a contiguous (len(rows), len(cols));
    flagged: how many pairs of the chunk are flagged.

    RBF tiles whose pairs are mostly flagged take every pair through ``_exp_nonpos_inplace``
    (``cross`` is spent by then and lends its memory as scratch); the rest call exp per
    flagged pair."""
    every = active.shape[0] == 0
    b, f = rows.shape[0], cols.shape[0]
    dense = every or (use_cross and code != MATERN52_CODE and 2 * flagged >= b * f)
    if dense and use_cross and code != MATERN52_CODE:
        for a in range(b):
            i = rows[a]
            for c in range(f):
                out[a, c] = -0.5 * max(sq_norms[i] + sq_norms[cols[c]] - 2.0 * cross[a, c], 0.0)
        flat = out.reshape(b * f)
        _exp_nonpos_inplace(flat, cross.reshape(b * f).view(np.int64))
        for t in range(b * f):
            flat[t] *= s2
        return
    for a in range(b):
        i = rows[a]
        for c in range(f):
            if not (every or active[a, c0 + c]):
                continue
            j = cols[c]
            if use_cross:
                r2 = max(sq_norms[i] + sq_norms[j] - 2.0 * cross[a, c], 0.0)
            else:
                r2 = sq_distance(xs, i, xs, j)
            out[a, c] = _profile(r2, s2, code)


@njit(cache=True, nogil=True)
def _finish_chunk(w, rows, pos, cols, ktile, gram, active, c0, out):
    """out[a, c0 + b] <- d(rows[a], cols[b]) for a = pos[r], from the kernel chunk
    ktile (len(rows), len(cols)) and gram[r] = V_rows[a] V_cols^T, for the flagged pairs
    (all when ``active`` is empty); out may be gram itself (pos = all rows, c0 = 0)."""
    every = active.shape[0] == 0
    for r in range(pos.shape[0]):
        a = pos[r]
        wi = w[rows[a]]
        for b in range(cols.shape[0]):
            if every or active[a, c0 + b]:
                out[a, c0 + b] = _distance_from_cov(ktile[a, b] - gram[r, b], wi, w[cols[b]])


@njit(cache=True, nogil=True)
def _finish_chunk_f32(v, w, scale, coef, audit, rows, e_pos, cols, ktile, gram32, active, c0,
                      row_thr, col_thr, out):
    """Distances of the float32-staged rows rows[e_pos] against cols (tile columns c0, ...)
    from gram32 = V32_rows V32_cols^T (len(e_pos), len(cols)); returns (decided, refined).

    |c32 - c64| <= coef |V_i||V_j| (coef = 1.01 (m + 2)(u32 + 2 u64): rounding V to float32,
    an m-term float32 dot product in any summation order, and the float64 one it stands in
    for), so |rho32 - rho64| <= delta = coef scale_i scale_j + 1e-12 with
    scale = |V| / sqrt(p), and |d32 - d64| = |d32^2 - d64^2| / (d32 + d64) <= delta / d32.
    A pair whose float32 distance minus that bound exceeds row_thr[a] + col_thr[c] is
    decided: the walk can only prune it, so d32 stands in. Every other pair is recomputed
    in float64. With ``audit`` the decided pairs are recomputed too, and a wrong decision
    raises.
    """
    every = active.shape[0] == 0
    decided = 0
    refined = 0
    for e in range(e_pos.shape[0]):
        a = e_pos[e]
        i = rows[a]
        wi = w[i]
        row_delta = coef * scale[i]
        for b in range(cols.shape[0]):
            if not (every or active[a, c0 + b]):
                continue
            j = cols[b]
            d32 = _distance_from_cov(ktile[a, b] - np.float64(gram32[e, b]), wi, w[j])
            limit = row_thr[a] + col_thr[c0 + b]
            # d32 - delta / d32 - 1e-12 > limit, without a division.
            sure = d32 * (d32 - limit - 1e-12) > row_delta * scale[j] + 1e-12
            if sure:
                out[a, c0 + b] = d32
                decided += 1
                if not audit:
                    continue
            d64 = _distance_from_cov(ktile[a, b] - _row_dot(v, i, j), wi, w[j])
            if sure:
                if not d64 > limit:
                    raise ValueError("float32 audit: a pair the float32 bound decided has a "
                                     "float64 distance at or below its pruning threshold")
            else:
                out[a, c0 + b] = d64
                refined += 1
    return decided, refined


def exact_thresholds(rows, cols):
    """Pruning thresholds (row_thr, col_thr) of +inf: a tile computed with them is exact
    float64 everywhere (float32 staging decides nothing)."""
    return np.full(rows.shape[0], np.inf), np.full(cols.shape[0], np.inf)


def tile_workspace(metric_data, block: int, chunk: int = TILE_CHUNK):
    """Scratch arrays for ``residual_tile_kernel`` on up to ``block`` rows, reused by every
    tile one traversal thread computes: gathered V and coordinates of the rows (block, m),
    (block, d) and of one column chunk (chunk, m), (chunk, d); three (block * chunk,)
    buffers for the V Gram block, the coordinate cross term and the kernel values; and,
    when float32 staging is on, float32 copies of the V buffers and of the Gram block
    (empty otherwise)."""
    xs, v, f32_on = metric_data[0], metric_data[1], metric_data[9]
    m, d = v.shape[1], xs.shape[1]
    b32, c32 = (block, chunk) if f32_on else (0, 0)
    return (np.empty((block, m)), np.empty((block, d)), np.empty((chunk, m)), np.empty((chunk, d)),
            np.empty(block * chunk), np.empty(block * chunk), np.empty(block * chunk),
            np.empty((b32, m), dtype=np.float32), np.empty((c32, m), dtype=np.float32),
            np.empty(b32 * c32, dtype=np.float32))


@njit(cache=True, nogil=True)
def _split_rows(f32_ok, rows, row_thr, col_thr_min, use_f32):
    """Positions in rows of the float32-staged rows and of the float64 ones. Distances are
    at most 1, so a row whose smallest threshold row_thr[a] + min(col_thr) is 1 or more
    (a kNN row with a wide or unfilled heap) can decide nothing: it runs in float64."""
    e_pos = np.empty(rows.shape[0], dtype=np.int64)
    i_pos = np.empty(rows.shape[0], dtype=np.int64)
    ne = 0
    ni = 0
    for a in range(rows.shape[0]):
        if use_f32 and f32_ok[rows[a]] and row_thr[a] + col_thr_min < 1.0:
            e_pos[ne] = a
            ne += 1
        else:
            i_pos[ni] = a
            ni += 1
    return e_pos[:ne], i_pos[:ni]


@njit(cache=True, nogil=True)
def residual_tile_kernel(qdata, tdata, rows, cols, active, row_thr, col_thr, workspace, counters):
    """Residual distance tile (len(rows), len(cols)) without leaving nopython mode.

    The nogil twin of ``ResidualMetric.tile`` for the phase-6 loop, following the same
    phase 1 and 2 choices (carried in ``tdata``). Columns go in chunks through the
    ``tile_workspace`` buffers, so a tile allocates only its output and each chunk's Gram
    block is still in cache when the distance pass reads it. Only pairs flagged in
    ``active`` (b, f) get a kernel value and a distance (the rest are never read; scalar
    exp is the dearest part here), and a chunk with few flagged pairs takes their V Gram
    entries one dot product each rather than by GEMM (``SPARSE_GRAM_DEN``). With float32
    staging (phase 4, with phase 1), rows whose p allows it take V_Q V_T^T from a float32
    GEMM, and a pair's float32 distance is kept only where its error bound shows it above
    row_thr[a] + col_thr[c], the threshold under which the walk could use it (see
    ``_finish_chunk_f32``). Time goes to the tick slots of counters, float32 decisions to
    its F32 slots.
    """
    xs, v, inv_sqrt_p, s2, code = tdata[0], tdata[1], tdata[2], tdata[3], tdata[4]
    centred, sq_norms, gemm_v, gemm_k = tdata[5], tdata[6], tdata[7], tdata[8]
    f32_on, v32, scale, f32_ok, coef, audit = (tdata[9], tdata[10], tdata[11], tdata[12],
                                               tdata[13], tdata[14])
    (v_rows, c_rows, v_cols, c_cols, gram_buf, cross_buf, kern_buf,
     v32_rows, v32_cols, gram32_buf) = workspace
    timed = counters.shape[0] > 0  # an empty array switches telemetry off
    t_start = read_cycles() if timed else 0
    b, f = rows.shape[0], cols.shape[0]
    every = active.shape[0] == 0
    chunk = v_cols.shape[0]
    out = np.empty((b, f))
    col_thr_min = col_thr.min() if f > 0 else np.inf
    e_pos, i_pos = _split_rows(f32_ok, rows, row_thr, col_thr_min, f32_on and gemm_v)
    ne, ni = e_pos.shape[0], i_pos.shape[0]
    vq = _gather_into(v, rows[i_pos], v_rows) if gemm_v else v_rows
    vq32 = _gather_into(v32, rows[e_pos], v32_rows)
    cq = _gather_into(centred, rows, c_rows) if gemm_k else c_rows
    # Gathering the rows' V and coordinates and the output belong to the whitened block.
    wb_ticks = (read_cycles() - t_start) if timed else 0
    kp_ticks = 0
    decided = 0
    refined = 0
    for c0 in range(0, f, chunk):
        part = cols[c0:min(f, c0 + chunk)]
        w = part.shape[0]
        t0 = read_cycles() if timed else 0
        gram = gram_buf[:ni * w].reshape(ni, w)
        flagged = b * w if every else _count_flagged(active, c0, w)
        if not gemm_v:
            gram_by_pairs(v, rows, part, gram)
        elif flagged * SPARSE_GRAM_DEN < b * w:
            _gram_of_flagged(vq, i_pos, v, part, active, c0, gram)
        elif ni > 0:
            np.dot(vq, _gather_into(v, part, v_cols).T, gram)
        gram32 = gram32_buf[:ne * w].reshape(ne, w)
        if ne > 0:
            np.dot(vq32, _gather_into(v32, part, v32_cols).T, gram32)
        t1 = read_cycles() if timed else 0
        cross = cross_buf[:b * w].reshape(b, w)
        if gemm_k:
            np.dot(cq, _gather_into(centred, part, c_cols).T, cross)
        ktile = kern_buf[:b * w].reshape(b, w)
        _kernel_into(xs, sq_norms, s2, code, rows, part, cross, gemm_k, active, c0, flagged,
                     ktile)
        t2 = read_cycles() if timed else 0
        _finish_chunk(inv_sqrt_p, rows, i_pos, part, ktile, gram, active, c0, out)
        if ne > 0:
            dd, rr = _finish_chunk_f32(v, inv_sqrt_p, scale, coef, audit, rows, e_pos, part,
                                       ktile, gram32, active, c0, row_thr, col_thr, out)
            decided += dd
            refined += rr
        if timed:
            t3 = read_cycles()
            wb_ticks += (t1 - t0) + (t3 - t2)
            kp_ticks += t2 - t1
    if timed:
        pairs = b * f
        counters[WB_PAIRS] += pairs
        counters[KP_PAIRS] += pairs
        counters[WB_TICKS] += wb_ticks
        counters[KP_TICKS] += kp_ticks
        counters[F32_DECIDED] += decided
        counters[F32_REFINED] += refined
    return out


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


RESIDUAL_KERNELS = specialise("residual_correlation", residual_pair, residual_tile_kernel)


class ResidualMetric:
    """Residual-correlation distances between dataset ids of one backend.

    Tiles follow the audit phases: ``block_gemm`` takes V_Q V_T^T from one GEMM (else a
    dot product per pair); ``gemm_kernel_provider`` forms the kernel tile from
    |a|^2 + |b|^2 - 2ab on cached centred coordinates and norms (else a broadcast
    (rows x cols x d) difference tensor); ``float32_staging`` (with ``block_gemm``) keeps a
    float32 copy of V for the rows ``f32_ok`` marks, used by the nopython tiles only.
    float32_audit: recompute every pair float32 decided, raising on a wrong decision.
    """

    name = "residual_correlation"
    pair = staticmethod(residual_pair)
    tile_kernel = staticmethod(residual_tile_kernel)
    kernels = RESIDUAL_KERNELS

    def __init__(self, backend: ResidualBackend, phases, float32_audit: bool = False):
        self.backend = backend
        self.phases = phases
        self.n = backend.n
        self.kernel = backend.kernel
        xs = backend.kernel.scale(backend.coords)
        self.v = np.ascontiguousarray(backend.v_matrix)
        self.p = np.ascontiguousarray(backend.p_diag)
        # Centring shrinks |a|^2 + |b|^2, the scale of the GEMM form's cancellation error.
        self.centred = np.ascontiguousarray(xs - xs.mean(axis=0))
        self.sq_norms = np.einsum("ij,ij->i", self.centred, self.centred)
        f32 = _float32_staging(self.v, self.p, bool(phases.float32_staging and phases.block_gemm))
        self.v32, self.f32_scale, self.f32_ok, self.f32_coef = f32
        self.inv_sqrt_p = 1.0 / np.sqrt(self.p)
        self.data = (xs, self.v, self.inv_sqrt_p, float(backend.kernel.variance),
                     int(backend.kernel.code), self.centred, self.sq_norms,
                     bool(phases.block_gemm), bool(phases.gemm_kernel_provider),
                     bool(self.f32_ok.any()), self.v32, self.f32_scale, self.f32_ok,
                     self.f32_coef, bool(float32_audit))
        # Absolute slack on pruning bounds. float64 evaluates |rho| to within
        # delta = eps [(m + 1) |V_i||V_j| + s2 (8 + 2 (d + 2)(|a_i|^2 + |a_j|^2))] / sqrt(p_i p_j)
        # (dot product over m terms, the GEMM-form kernel tile on centred coordinates a,
        # a few ulps for exp and products), and sqrt turns that into at most sqrt(delta) in d
        # (|sqrt x - sqrt y| <= sqrt|x - y|). Bounds built from two computed distances are
        # loosened by twice that, taken at its worst over the data.
        eps = np.finfo(np.float64).eps
        m, d = self.v.shape[1], xs.shape[1]
        vmax = float(np.einsum("ij,ij->i", self.v, self.v).max())
        amax = float(self.sq_norms.max())
        s2 = float(backend.kernel.variance)
        delta = eps * ((m + 1) * vmax + s2 * (8 + 4 * (d + 2) * amax)) / float(self.p.min())
        self.prune_slack = float(min(1.0, 2.0 * math.sqrt(delta)))
        for arr in (xs, self.centred, self.sq_norms, self.inv_sqrt_p, self.v32, self.f32_scale,
                    self.f32_ok):
            arr.setflags(write=False)

    def workspace(self, block: int):
        """Scratch arrays for one traversal thread's tiles of up to ``block`` rows."""
        return tile_workspace(self.data, block)

    def kernel_tile(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) float64 kernel values k(x_rows, x_cols)."""
        if self.phases.gemm_kernel_provider:
            a = self.centred[rows]
            r2 = a @ self.centred[cols].T
            r2 *= -2.0
            r2 += self.sq_norms[rows, None]
            r2 += self.sq_norms[None, cols]
            np.maximum(r2, 0.0, out=r2)
        else:
            xs = self.data[0]
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
        if self.phases.block_gemm:
            gram = self.v[rows] @ self.v[cols].T
        else:
            gram = np.empty((rows.shape[0], cols.shape[0]))
            gram_by_pairs(self.v, rows, cols, gram)
        t1 = time.perf_counter()
        ktile = self.kernel_tile(rows, cols)
        t2 = time.perf_counter()
        _finish_chunk(self.inv_sqrt_p, rows, np.arange(rows.shape[0]), cols, ktile, gram,
                      ALL_PAIRS, 0, gram)
        if counters is not None and counters.size:
            pairs = rows.shape[0] * cols.shape[0]
            counters[WB_PAIRS] += pairs
            counters[WB_MS] += (t1 - t0 + time.perf_counter() - t2) * 1e3
            counters[KP_PAIRS] += pairs
            counters[KP_MS] += (t2 - t1) * 1e3
        return gram
