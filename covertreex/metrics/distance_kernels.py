"""Squared Euclidean distances from coordinate differences, pair and tile (Numba).

Differences rather than |a|^2 + |b|^2 - 2ab: the GEMM form loses about eps * |a|^2 to
cancellation, and for the d <= 16 columns used here the difference form is as fast.
"""

from numba import njit, prange


@njit(nogil=True, inline="always")
def sq_distance(x, i, y, j):
    acc = 0.0
    for c in range(x.shape[1]):
        diff = x[i, c] - y[j, c]
        acc += diff * diff
    return acc


@njit(cache=True, nogil=True, parallel=True)
def sq_distance_tile(x, rows, y, cols, out):
    """out[a, b] = |x[rows[a]] - y[cols[b]]|^2; out is (len(rows), len(cols)) float64."""
    for a in prange(rows.shape[0]):
        i = rows[a]
        for b in range(cols.shape[0]):
            out[a, b] = sq_distance(x, i, y, cols[b])
