"""Residual-correlation distance d = sqrt(1 - |rho|) as Numba pair and tile kernels.

The kernels read the metric's ``ResidualData`` (covertreex.metrics.residual.metric): scaled
coordinates, V, 1/sqrt(p), the kernel's variance and code, and the tile plan's switches.
Tiles take ``V_Q V_T^T`` from one float64 GEMM (``gram_direct``) and fuse the kernel tile,
the correlation and the square root in one Numba pass. docs/design.md, "The
residual-correlation metric", gives the definitions.
"""

import math

import numpy as np
from numba import njit

from ..._cycles import read_cycles
from ...kernels import MATERN52_CODE
from ...telemetry import F32_DECIDED, F32_REFINED, KP_PAIRS, KP_TICKS, WB_PAIRS, WB_TICKS
from ..distance_kernels import sq_distance

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
    t = tdata
    cov = _profile(sq_distance(t.xs, i, t.xs, j), t.s2, t.code) - _row_dot(t.v, i, j)
    return _distance_from_cov(cov, t.inv_sqrt_p[i], t.inv_sqrt_p[j])


@njit(cache=True, nogil=True)
def gram_by_pairs(v, rows, cols, out):
    """out[a, b] = V[rows[a]] . V[cols[b]], one dot product per pair: the pre-audit
    path that phase 1 (block_gemm) replaces with a GEMM. Serial: walks already run one
    block per core (covertreex.engine.walk.walk_blocks)."""
    for a in range(rows.shape[0]):
        for b in range(cols.shape[0]):
            out[a, b] = _row_dot(v, rows[a], cols[b])


# Every chunk takes its V Gram entries from ``gram_direct``: with V read in place and four
# rows by six columns a step, it ran faster than gathering the columns for a BLAS GEMM from 8
# rows to 256. Taking, six columns at a time, only the rows flagged there (in blocks of four
# rows when they have two flags or more) ran faster on sparse chunks than one dot product per
# flagged pair over the whole chunk, whose columns' V no longer stayed in cache from one row
# to the next (perf/README.md, "Direct Gram tiles and dense finishes").
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def gram_direct(vq, v, cols, active, pos, c0, out):
    """out[r, c] = vq[r] . V[cols[c]] for vq (b, m) and out (b, len(cols)), reading the
    columns' rows of V where they are, six columns a step. Row r's flags are
    active[pos[r], c0:c0 + len(cols)], for pos (b,) int64 and active (B, F) bool (every pair
    is flagged when active is empty). Every flagged pair is set; of the others, some are
    set and the rest left unset. In a step, the rows with two or more flags among its six
    columns go four at a time: the six columns' rows stay in L1 while the four rows stream
    past them, so each row of vq is read from L2 once per six columns, and the 24 sums, each
    its own chain of fused multiply-adds, fill the vector registers (wider or taller steps
    spill them); a step short of rows or columns repeats its last one (the sums land on it
    again). A row with one flag there takes one dot product, and a row with none is skipped.
    reassoc lets LLVM vectorise the sums: the error bound behind prune_slack holds for any
    order of summation, with or without fused multiply-adds."""
    b, m = vq.shape
    f = cols.shape[0]
    every = active.shape[0] == 0
    sel = np.empty(b + 3, dtype=np.int64)
    for c in range(0, f, 6):
        c1, c2, c3 = min(c + 1, f - 1), min(c + 2, f - 1), min(c + 3, f - 1)
        c4, c5 = min(c + 4, f - 1), min(c + 5, f - 1)
        n = 0
        for r in range(b):
            flags = 6
            if not every:
                flags = 0
                for cc in range(c, min(f, c + 6)):
                    flags += active[pos[r], c0 + cc]
            if flags >= 2:
                sel[n] = r
                n += 1
            elif flags == 1:
                for cc in range(c, min(f, c + 6)):
                    if active[pos[r], c0 + cc]:
                        dot = 0.0
                        for t in range(m):
                            dot += vq[r, t] * v[cols[cc], t]
                        out[r, cc] = dot
        if n == 0:
            continue
        sel[n:n + 3] = sel[n - 1]
        j0, j1, j2, j3, j4, j5 = cols[c], cols[c1], cols[c2], cols[c3], cols[c4], cols[c5]
        for q in range(0, n, 4):
            r0, r1, r2, r3 = sel[q], sel[q + 1], sel[q + 2], sel[q + 3]
            s00 = s01 = s02 = s03 = s04 = s05 = s10 = s11 = s12 = s13 = s14 = s15 = 0.0
            s20 = s21 = s22 = s23 = s24 = s25 = s30 = s31 = s32 = s33 = s34 = s35 = 0.0
            for t in range(m):
                x0, x1, x2, x3, x4, x5 = v[j0, t], v[j1, t], v[j2, t], v[j3, t], v[j4, t], v[j5, t]
                y0, y1, y2, y3 = vq[r0, t], vq[r1, t], vq[r2, t], vq[r3, t]
                s00 += y0 * x0
                s01 += y0 * x1
                s02 += y0 * x2
                s03 += y0 * x3
                s04 += y0 * x4
                s05 += y0 * x5
                s10 += y1 * x0
                s11 += y1 * x1
                s12 += y1 * x2
                s13 += y1 * x3
                s14 += y1 * x4
                s15 += y1 * x5
                s20 += y2 * x0
                s21 += y2 * x1
                s22 += y2 * x2
                s23 += y2 * x3
                s24 += y2 * x4
                s25 += y2 * x5
                s30 += y3 * x0
                s31 += y3 * x1
                s32 += y3 * x2
                s33 += y3 * x3
                s34 += y3 * x4
                s35 += y3 * x5
            out[r0, c], out[r0, c1], out[r0, c2], out[r0, c3], out[r0, c4], out[r0, c5] = (
                s00, s01, s02, s03, s04, s05)
            out[r1, c], out[r1, c1], out[r1, c2], out[r1, c3], out[r1, c4], out[r1, c5] = (
                s10, s11, s12, s13, s14, s15)
            out[r2, c], out[r2, c1], out[r2, c2], out[r2, c3], out[r2, c4], out[r2, c5] = (
                s20, s21, s22, s23, s24, s25)
            out[r3, c], out[r3, c1], out[r3, c2], out[r3, c3], out[r3, c4], out[r3, c5] = (
                s30, s31, s32, s33, s34, s35)


@njit(cache=True, nogil=True)
def _count_flagged(active, c0, f):
    """Flagged pairs of active (b, :) in columns c0 .. c0 + f - 1."""
    flagged = 0
    for a in range(active.shape[0]):
        for c in range(f):
            flagged += active[a, c0 + c]
    return flagged


@njit(cache=True, nogil=True)
def _consecutive(ids):
    """True when ids (n,) int64, n >= 1, are ids[0], ids[0] + 1, ...: a brute-force scan's
    columns."""
    for r in range(1, ids.shape[0]):
        if ids[r] != ids[0] + r:
            return False
    return ids.shape[0] > 0


@njit(cache=True, nogil=True)
def _gather_into(a, ids, out):
    """out[r] = a[ids[r]] for r < len(ids); returns that leading part of out. Consecutive
    ids (a brute-force scan's columns) return the slice of a itself: no copy."""
    n = ids.shape[0]
    if _consecutive(ids):
        return a[ids[0]:ids[0] + n]
    for r in range(n):
        out[r] = a[ids[r]]
    return out[:n]


_LOG2E = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for the k that occur (Cody and Waite).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


# Adding 1.5 * 2**52 to an integer-valued float64 k (|k| < 2**51) leaves k in the low bits of
# the sum's mantissa: its int64 bits minus _MAGIC_BITS are k, without a float-to-int
# conversion, which AVX2 has no vector instruction for.
_MAGIC = 6755399441055744.0
_MAGIC_BITS = np.int64(4843621399236968448)


@njit(cache=True, nogil=True)
def _exp_nonpos_inplace(x, bits, factor):
    """x[i] <- exp(x[i]) * factor for x (n,) float64 <= 0, the exp within about 1 ulp, in
    three loops LLVM vectorises (libm's exp is a scalar call); the product with factor is
    rounded after the exp's own. bits: (>= n,) int64 scratch. Arguments below -700 give
    exp(-700) ~ 1e-304, an absolute error far under the kernel's rounding."""
    n = x.shape[0]
    kf = bits[:n].view(np.float64)
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
        kf[t] = k + _MAGIC
    for t in range(n):
        bits[t] = (bits[t] - _MAGIC_BITS + 1023) << 52  # 2**k as float64 bits
    scale = bits[:n].view(np.float64)
    for t in range(n):
        x[t] = (x[t] * scale[t]) * factor


@njit(cache=True, nogil=True)
def _kernel_into(t, rows, cols, cross, active, c0, flagged, out):
    """Kernel values of the flagged pairs (all when ``active`` is empty) of rows against
    cols, which are the tile's columns c0, c0 + 1, ...: r2 from the GEMM cross term on
    centred coordinates (``t.gemm_k``), or from differences; t: the metric's
    ``ResidualData``. ``out`` is a contiguous (len(rows), len(cols)); flagged: how many
    pairs of the chunk are flagged.

    RBF tiles whose pairs are mostly flagged take every pair through ``_exp_nonpos_inplace``
    (``cross`` is spent by then and lends its memory as scratch); the rest call exp per
    flagged pair."""
    xs, sq_norms, s2, code, use_cross = t.xs, t.sq_norms, t.s2, t.code, t.gemm_k
    every = active.shape[0] == 0
    b, f = rows.shape[0], cols.shape[0]
    dense = every or (use_cross and code != MATERN52_CODE and 2 * flagged >= b * f)
    if dense and use_cross and code != MATERN52_CODE:
        col_sq = np.empty(f)
        for c in range(f):
            col_sq[c] = sq_norms[cols[c]]
        for a in range(b):
            row_sq = sq_norms[rows[a]]
            for c in range(f):
                out[a, c] = -0.5 * max(row_sq + col_sq[c] - 2.0 * cross[a, c], 0.0)
        _exp_nonpos_inplace(out.reshape(b * f), cross.reshape(b * f).view(np.int64), s2)
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
def finish_chunk(w, rows, pos, cols, ktile, gram, active, c0, out):
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
def finish_dense(w, rows, pos, cols, ktile, gram, c0, out):
    """finish_chunk for every pair of the chunk, flagged or not (a dense chunk's pairs are
    mostly flagged, and an unflagged pair's value is never read): without the flag test
    and with the columns' 1/sqrt(p) gathered first, the loop has no branch and LLVM
    vectorises it, square root included. Same operations as ``_distance_from_cov``, so the
    same bits: max(1 - |rho|, 0) is 0 exactly when |rho| >= 1."""
    wc = np.empty(cols.shape[0])
    for b in range(cols.shape[0]):
        wc[b] = w[cols[b]]
    for r in range(pos.shape[0]):
        a = pos[r]
        wi = w[rows[a]]
        for b in range(cols.shape[0]):
            rho = (ktile[a, b] - gram[r, b]) * wi * wc[b]
            out[a, c0 + b] = math.sqrt(max(1.0 - abs(rho), 0.0))


@njit(cache=True, nogil=True)
def _finish_chunk_f32(t, rows, e_pos, cols, ktile, gram32, active, c0, row_thr, col_thr, out):
    """Distances of the float32-staged rows rows[e_pos] against cols (tile columns c0, ...)
    from gram32 = V32_rows V32_cols^T (len(e_pos), len(cols)); returns (decided, refined).

    |c32 - c64| <= coef |V_i||V_j| (coef = 1.01 (m + 2)(u32 + 2 u64): rounding V to float32,
    an m-term float32 dot product in any summation order, and the float64 one it stands in
    for), so |rho32 - rho64| <= delta = coef scale_i scale_j + 1e-12 with
    scale = |V| / sqrt(p), and |d32 - d64| = |d32^2 - d64^2| / (d32 + d64) <= delta / d32.
    A pair whose float32 distance minus that bound exceeds row_thr[a] + col_thr[c] is
    decided: the walk can only prune it, so d32 stands in. Every other pair is recomputed
    in float64. With ``t.audit`` the decided pairs are recomputed too, and a wrong decision
    raises. t: the metric's ``ResidualData``.
    """
    v, w, scale, coef, audit = t.v, t.inv_sqrt_p, t.f32_scale, t.f32_coef, t.audit
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

    The nogil twin of ``ResidualMetric.tile`` for the nopython walk, following the same
    block_gemm and gemm_kernel_provider choices (carried in ``tdata``, a ``ResidualData``).
    Columns go in chunks through the ``TileWorkspace`` buffers, so a tile allocates only its
    output and each chunk's Gram block is still in cache when the distance pass reads it.
    Only pairs flagged in ``active`` (b, f) get a kernel value and a distance (the rest are
    never read; scalar exp is the dearest part here), and the V Gram computes, six columns
    at a time, only the rows flagged there (``gram_direct``). With float32 staging, rows
    whose p allows it take V_Q V_T^T from a float32 GEMM, and a pair's float32 distance is
    kept only where its error bound shows it above row_thr[a] + col_thr[c], the threshold
    under which the walk could use it (see ``_finish_chunk_f32``). Time goes to the tick
    slots of counters, float32 decisions to its F32 slots.
    """
    t, ws = tdata, workspace
    timed = counters.shape[0] > 0  # an empty array switches telemetry off
    t_start = read_cycles() if timed else 0
    b, f = rows.shape[0], cols.shape[0]
    every = active.shape[0] == 0
    chunk = ws.c_cols.shape[0]
    out = np.empty((b, f))
    col_thr_min = col_thr.min() if f > 0 else np.inf
    e_pos, i_pos = _split_rows(t.f32_ok, rows, row_thr, col_thr_min, t.f32_on and t.gemm_v)
    ne, ni = e_pos.shape[0], i_pos.shape[0]
    vq = _gather_into(t.v, rows[i_pos], ws.v_rows) if t.gemm_v else ws.v_rows
    vq32 = _gather_into(t.v32, rows[e_pos], ws.v32_rows)
    cq = _gather_into(t.centred, rows, ws.c_rows) if t.gemm_k else ws.c_rows
    # A scan's tile: every pair against consecutive ids, so every chunk's columns lie together
    # in V and need no gather. Its rows are V's own rows too, which in gram_direct would share
    # L1 sets with the columns'; BLAS packs both (perf/README.md, "BLAS for scans").
    scan = every and _consecutive(cols)
    # Gathering the rows' V and coordinates and the output belong to the whitened block.
    wb_ticks = (read_cycles() - t_start) if timed else 0
    kp_ticks = 0
    decided = 0
    refined = 0
    for c0 in range(0, f, chunk):
        part = cols[c0:min(f, c0 + chunk)]
        w = part.shape[0]
        t0 = read_cycles() if timed else 0
        gram = ws.gram[:ni * w].reshape(ni, w)
        flagged = b * w if every else _count_flagged(active, c0, w)
        if not t.gemm_v:
            gram_by_pairs(t.v, rows, part, gram)
        elif ni > 0 and scan:
            np.dot(vq, t.v[part[0]:part[0] + w].T, gram)
        elif ni > 0:
            gram_direct(vq, t.v, part, active, i_pos, c0, gram)
        gram32 = ws.gram32[:ne * w].reshape(ne, w)
        if ne > 0:
            np.dot(vq32, _gather_into(t.v32, part, ws.v32_cols).T, gram32)
        t1 = read_cycles() if timed else 0
        cross = ws.cross[:b * w].reshape(b, w)
        if t.gemm_k:
            np.dot(cq, _gather_into(t.centred, part, ws.c_cols).T, cross)
        ktile = ws.kern[:b * w].reshape(b, w)
        _kernel_into(t, rows, part, cross, active, c0, flagged, ktile)
        t2 = read_cycles() if timed else 0
        if every or 2 * flagged >= b * w:
            finish_dense(t.inv_sqrt_p, rows, i_pos, part, ktile, gram, c0, out)
        else:
            finish_chunk(t.inv_sqrt_p, rows, i_pos, part, ktile, gram, active, c0, out)
        if ne > 0:
            dd, rr = _finish_chunk_f32(t, rows, e_pos, part, ktile, gram32, active, c0,
                                       row_thr, col_thr, out)
            decided += dd
            refined += rr
        if timed:
            t3 = read_cycles()
            wb_ticks += (t1 - t0) + (t3 - t2)
            kp_ticks += t2 - t1
    if timed:
        _count(counters, b * f, wb_ticks, kp_ticks, decided, refined)
    return out


@njit(cache=True, nogil=True)
def _count(counters, pairs, wb_ticks, kp_ticks, decided, refined):
    counters[WB_PAIRS] += pairs
    counters[KP_PAIRS] += pairs
    counters[WB_TICKS] += wb_ticks
    counters[KP_TICKS] += kp_ticks
    counters[F32_DECIDED] += decided
    counters[F32_REFINED] += refined
