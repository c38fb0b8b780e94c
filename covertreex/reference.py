"""Exact float64 brute-force k-nearest neighbours: the truth behind every test and benchmark recall.

Both metrics are evaluated in row blocks so that n = 32768 never needs an n x n matrix.
Euclidean distances come from coordinate differences (never ``|a|^2 + |b|^2 - 2ab``), so they are
exact to a few ulps. Residual correlations follow docs/design.md, "The residual-correlation metric": the kernel tile from
``backend.kernel`` minus ``V_rows V_cols^T`` by float64 GEMM, divided by ``sqrt(p_i p_j)``.

Every result row is sorted by (distance, index): ties go to the lower index. Rows with fewer than
k candidates are padded with id -1 and distance +inf.

The checkers compare a result of any kNN implementation with this reference and return its recall;
with ``strict=True`` they raise ``AssertionError`` naming the rows that differ.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._validation import as_ids, as_points, as_positive_float, as_positive_int
from .metrics.residual.backend import ResidualBackend

# Entries per distance tile: 8 MiB of float64 keeps the elementwise passes close to the caches.
_TILE_ENTRIES = 1 << 20
# Entries per block of V_Q V^T products (64 MiB): enough rows for the GEMM to reach its peak.
_GEMM_ENTRIES = 1 << 23
# Row-block size of the pairwise re-evaluation in the checkers, whose (rows, k, m) gather of V
# dominates memory.
_PAIR_ROWS = 64
# The selection bound comes from every 8th column: its partition costs an eighth of a full one,
# and it leaves about 8 k candidates per row to sort.
_SAMPLE_STRIDE = 8
_EPS = np.finfo(np.float64).eps
_REPORT_ROWS = 3


def euclidean_distances(x, y) -> np.ndarray:
    """Exact Euclidean distances between the rows of x (nx, d) and y (ny, d): (nx, ny) float64."""
    x = as_points(x, "x")
    y = as_points(y, "y")
    _check_same_dim(x, "x", y, "y")
    out = np.empty((x.shape[0], y.shape[0]))
    y_cols = np.ascontiguousarray(y.T)
    step = _rows_per_block(y.shape[0])
    for start in range(0, x.shape[0], step):
        _euclidean_tile(x[start : start + step], y_cols, out[start : start + step])
    return out


def euclidean_knn(points, queries, k, predecessor_mode=False):
    """Exact Euclidean kNN of ``queries`` among ``points``.

    points: (n, d) float. queries: (q, d) float, fresh points (a query equal to a data point finds
    it at distance 0). With ``predecessor_mode=True`` queries must be None: row i is point i and
    sees only points j < i.
    Returns idx (q, k) int64 and dist (q, k) float64, rows sorted by (distance, index), padded
    with -1 / +inf.
    """
    points = as_points(points, "points")
    k = as_positive_int(k, "k")
    predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
    queries, query_ids, _ = _euclidean_queries(points, queries, k, predecessor_mode)
    n = points.shape[0]
    q = queries.shape[0]
    idx = np.full((q, k), -1, dtype=np.int64)
    dist = np.full((q, k), np.inf)
    points_cols = np.ascontiguousarray(points.T)
    step = _rows_per_block(n)
    for start in range(0, q, step):
        stop = min(start + step, q)
        # Predecessor rows i in [start, stop) only need the columns j < i.
        width = query_ids[stop - 1] if predecessor_mode else n
        if width == 0:
            continue
        tile = _euclidean_tile(queries[start:stop], points_cols[:, :width])
        if predecessor_mode:
            _mask_successors(tile, query_ids[start:stop])
        idx[start:stop], dist[start:stop] = _k_smallest(tile, k)
    return idx, dist


def residual_abs_rho(backend, rows, cols) -> np.ndarray:
    """|rho| between dataset ids ``rows`` (r,) and ``cols`` (c,): (r, c) float64 in [0, 1]."""
    _check_backend(backend)
    rows = as_ids(rows, "rows", backend.n)
    cols = as_ids(cols, "cols", backend.n)
    sqrt_p = np.sqrt(backend.p_diag)
    x_cols = backend.coords[cols]
    v_cols_t = backend.v_matrix[cols].T
    s_cols = sqrt_p[cols]
    out = np.empty((rows.shape[0], cols.shape[0]))
    step = _rows_per_block(cols.shape[0])
    for start in range(0, rows.shape[0], step):
        block = rows[start : start + step]
        products = backend.v_matrix[block] @ v_cols_t
        out[start : start + step] = _abs_rho_tile(
            backend.kernel, backend.coords[block], sqrt_p[block], x_cols, s_cols, products
        )
    return out


def residual_distances(backend, rows, cols) -> np.ndarray:
    """Residual-correlation distances sqrt(1 - |rho|): (len(rows), len(cols)) float64 in [0, 1]."""
    out = residual_abs_rho(backend, rows, cols)
    np.subtract(1.0, out, out=out)
    return np.sqrt(out, out=out)


def residual_knn(backend, query_ids=None, k=50, predecessor_mode=False):
    """Exact residual-correlation kNN of dataset ids.

    query_ids: (q,) int ids, or None for every point. A query is never its own neighbour, but
    other points with the same coordinates are. With ``predecessor_mode=True`` query i sees only
    points j < i (the Vecchia conditioning set).
    Returns idx (q, k) int64 and dist (q, k) float64, rows sorted by (distance, index), padded
    with -1 / +inf.
    """
    _check_backend(backend)
    k = as_positive_int(k, "k")
    predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
    n = backend.n
    query_ids = np.arange(n, dtype=np.int64) if query_ids is None else as_ids(query_ids, "query_ids", n)
    q = query_ids.shape[0]
    idx = np.full((q, k), -1, dtype=np.int64)
    dist = np.full((q, k), np.inf)
    # Ascending ids make a predecessor block need only the columns below its largest id.
    order = np.argsort(query_ids, kind="stable")
    sorted_ids = query_ids[order]
    sqrt_p = np.sqrt(backend.p_diag)
    coords, v = backend.coords, backend.v_matrix
    step = _rows_per_block(n, _GEMM_ENTRIES)
    for start in range(0, q, step):
        block = sorted_ids[start : start + step]
        block_rows = order[start : start + step]
        width = block[-1] if predecessor_mode else n
        if width == 0:
            continue
        # The GEMM runs near peak only with a few hundred rows; the elementwise passes and the
        # selection run faster on cache-sized sub-tiles.
        products = v[block] @ v[:width].T
        sub = _rows_per_block(width)
        for s in range(0, block.shape[0], sub):
            ids = block[s : s + sub]
            tile = _abs_rho_tile(
                backend.kernel, coords[ids], sqrt_p[ids], coords[:width], sqrt_p[:width],
                products[s : s + sub],
            )
            np.subtract(1.0, tile, out=tile)
            np.sqrt(tile, out=tile)
            if predecessor_mode:
                _mask_successors(tile, ids)
            else:
                tile[np.arange(ids.shape[0]), ids] = np.inf
            idx[block_rows[s : s + sub]], dist[block_rows[s : s + sub]] = _k_smallest(tile, k)
    return idx, dist


def residual_tolerance(backend, query_ids=None, c=400.0) -> np.ndarray:
    """Per-query |rho| tolerance c * eps64 * s2 / sqrt(p_i * min(p)): (q,) float64 (docs/design.md, "Float64 error rule").

    It bounds the float64 cancellation in ``k - V.V`` scaled by the residual variances, so two
    exact evaluations of the same |rho| differ by less than it.
    """
    _check_backend(backend)
    c = as_positive_float(c, "c")
    n = backend.n
    query_ids = np.arange(n, dtype=np.int64) if query_ids is None else as_ids(query_ids, "query_ids", n)
    p = backend.p_diag
    return c * _EPS * backend.kernel.variance / np.sqrt(p[query_ids] * p.min())


def check_euclidean_knn(
    points, queries, idx, dist, k, predecessor_mode=False, atol=1e-9, *, strict=True, reference=None
) -> float:
    """Compare a Euclidean kNN result with the float64 reference; return its recall.

    points (n, d), queries (q, d) or None in predecessor mode, idx (q, k) int, dist (q, k) float.
    ``reference`` may pass a precomputed ``euclidean_knn`` result to save the brute force.
    Recall is the fraction of reference neighbours found, where a missing reference neighbour at
    the boundary distance (the k-th reference distance, within atol) is excused by a returned one
    at that distance. With ``strict=True`` raises AssertionError unless recall is 1, ids are valid,
    distinct and padded, distances equal their exact re-evaluation within atol and rows are sorted
    by (distance, index).
    """
    points = as_points(points, "points")
    k = as_positive_int(k, "k")
    predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
    atol = _as_nonnegative_float(atol, "atol")
    queries, query_ids, avail = _euclidean_queries(points, queries, k, predecessor_mode)
    if reference is None:
        reference = euclidean_knn(points, None if predecessor_mode else queries, k, predecessor_mode)
    ref_idx, ref_dist = _as_reference(reference, avail.shape[0], k)
    n = points.shape[0]
    idx, usable, problems = _check_ids(idx, k, n, avail, query_ids, predecessor_mode, exclude_self=False)
    dist = _as_result_dist(dist, idx.shape)
    points_cols = np.ascontiguousarray(points.T)
    evaluated = np.full(idx.shape, np.inf)
    for start in range(0, idx.shape[0], _PAIR_ROWS):
        rows = slice(start, start + _PAIR_ROWS)
        evaluated[rows] = _euclidean_pairs(queries[rows], points_cols, idx[rows], usable[rows])
    expected = _expected_mask(avail, k)
    found = _found_per_row(idx, usable, evaluated, ref_idx, ref_dist, expected, avail, atol, n)
    recall = _ratio(found.sum(), avail.sum())
    if not strict:
        return recall

    names = _RowNames("point" if predecessor_mode else "query row", query_ids)
    shown = [("returned ids", idx), ("returned dist", dist), ("exact dist", evaluated),
             ("reference ids", ref_idx), ("reference dist", ref_dist)]
    _report_rows(problems, found < avail, f"neighbour sets differ from the reference (atol={atol:g})",
                 names, shown)
    wrong = usable & ~_close(dist, evaluated, atol)
    _report_rows(problems, wrong.any(axis=1),
                 f"returned distances differ from their exact re-evaluation by more than {atol:g}",
                 names, shown)
    _check_dist_layout(problems, idx, dist, expected, names)
    _raise(problems, "euclidean kNN result differs from the float64 reference")
    return recall


def check_residual_knn(
    backend, query_ids, idx, k, predecessor_mode=False, c=400.0, strict=True, *, dist=None, reference=None
) -> float:
    """Compare a residual kNN result with the float64 reference; return its recall.

    query_ids (q,) ids or None for every point, idx (q, k) int. Following docs/design.md, "Float64 error rule", the
    returned neighbours' |rho| (re-evaluated here) sorted descending must agree position by
    position with the reference's k best |rho| within ``residual_tolerance(backend, query_ids, c)``.
    Recall is the fraction of positions that agree. ``dist`` (q, k), when given, must satisfy
    |(1 - dist^2) - |rho|| <= tol, be padded with +inf and sorted by (distance, index).
    ``reference`` may pass a precomputed ``residual_knn`` result. With ``strict=True`` raises
    AssertionError unless every position agrees and the ids are valid (in range, distinct, not the
    query itself, below the query in predecessor mode) and padded with -1.
    """
    _check_backend(backend)
    k = as_positive_int(k, "k")
    predecessor_mode = _as_flag(predecessor_mode, "predecessor_mode")
    n = backend.n
    query_ids = np.arange(n, dtype=np.int64) if query_ids is None else as_ids(query_ids, "query_ids", n)
    tol = residual_tolerance(backend, query_ids, c)
    avail = _residual_avail(query_ids, n, k, predecessor_mode)
    if reference is None:
        reference = residual_knn(backend, query_ids, k, predecessor_mode)
    ref_idx, _ = _as_reference(reference, query_ids.shape[0], k)
    idx, usable, problems = _check_ids(idx, k, n, avail, query_ids, predecessor_mode, exclude_self=True)
    if dist is not None:
        dist = _as_result_dist(dist, idx.shape)
    expected = _expected_mask(avail, k)
    got = _abs_rho_pairs(backend, query_ids, idx, usable)
    want = _abs_rho_pairs(backend, query_ids, ref_idx, expected)
    # Unusable entries become -inf, which sorts last and never agrees with a reference value.
    got_sorted = -np.sort(-np.where(usable, got, -np.inf), axis=1)
    want_sorted = -np.sort(-np.where(expected, want, -np.inf), axis=1)
    agree = expected & _close(got_sorted, want_sorted, tol[:, None])
    recall = _ratio(agree.sum(), avail.sum())
    if not strict:
        return recall

    names = _RowNames("query id", query_ids, tol)
    shown = [("returned ids", idx), ("returned |rho| sorted", got_sorted),
             ("reference ids", ref_idx), ("reference |rho|", want_sorted)]
    _report_rows(problems, agree.sum(axis=1) < avail,
                 f"neighbour |rho| differ from the reference beyond tol = {c:g} eps s2 / sqrt(p_i min p)",
                 names, shown)
    if dist is not None:
        wrong = usable & ~_close(1.0 - dist * dist, got, tol[:, None])
        _report_rows(problems, wrong.any(axis=1),
                     "returned distances disagree with |rho| = 1 - dist^2 beyond tol", names,
                     [("returned ids", idx), ("returned dist", dist), ("exact |rho|", got)])
        _check_dist_layout(problems, idx, dist, expected, names)
    _raise(problems, "residual kNN result differs from the float64 reference")
    return recall


# --- tiles and selection ------------------------------------------------------------------------


def _rows_per_block(ncols: int, entries: int = _TILE_ENTRIES) -> int:
    return max(1, entries // max(ncols, 1))


def _euclidean_tile(x_rows, y_cols, out=None):
    """Distances between x_rows (b, d) and the columns of y_cols (d, w): (b, w) float64."""
    out = np.empty((x_rows.shape[0], y_cols.shape[1])) if out is None else out
    out.fill(0.0)
    diff = np.empty_like(out)
    for c in range(x_rows.shape[1]):
        np.subtract(x_rows[:, c, None], y_cols[c], out=diff)
        np.multiply(diff, diff, out=diff)
        out += diff
    return np.sqrt(out, out=out)


def _euclidean_pairs(x_rows, y_cols, idx, usable):
    """Distances from x_rows[r] (b, d) to point idx[r, j] where usable, +inf elsewhere: (b, k).

    Same operations in the same order as ``_euclidean_tile``, so the values agree bitwise.
    """
    safe = np.where(usable, idx, 0)
    r2 = np.zeros(idx.shape)
    for c in range(x_rows.shape[1]):
        diff = x_rows[:, c, None] - y_cols[c][safe]
        r2 += diff * diff
    return np.where(usable, np.sqrt(r2), np.inf)


def _abs_rho_tile(kernel, x_rows, s_rows, x_cols, s_cols, products):
    """|rho| tile (b, w): kernel tile minus products = V_rows V_cols^T, over sqrt(p_i p_j), clipped."""
    tile = kernel(x_rows, x_cols)
    tile -= products
    tile /= s_rows[:, None]
    tile /= s_cols[None, :]
    np.abs(tile, out=tile)
    return np.minimum(tile, 1.0, out=tile)


def _abs_rho_pairs(backend, query_ids, idx, usable):
    """|rho| between query_ids[r] and idx[r, j] where usable, 0 elsewhere: (q, k) float64.

    The kernel values repeat the per-column difference loop of ``kernel.__call__`` and match the
    reference tiles bitwise; the V products (einsum, not GEMM) differ from them by round-off.
    """
    kernel = backend.kernel
    scaled = kernel.scale(backend.coords)
    v = backend.v_matrix
    sqrt_p = np.sqrt(backend.p_diag)
    out = np.zeros(idx.shape)
    for start in range(0, idx.shape[0], _PAIR_ROWS):
        rows = slice(start, start + _PAIR_ROWS)
        ids = query_ids[rows]
        cols = np.where(usable[rows], idx[rows], 0)
        r2 = np.zeros(cols.shape)
        for c in range(scaled.shape[1]):
            diff = scaled[ids, c, None] - scaled[cols, c]
            r2 += diff * diff
        cov = kernel.profile(r2) - np.einsum("bm,bkm->bk", v[ids], v[cols])
        rho = np.minimum(np.abs(cov / sqrt_p[ids, None] / sqrt_p[cols]), 1.0)
        out[rows] = np.where(usable[rows], rho, 0.0)
    return out


def _mask_successors(tile, ids):
    """Exclude column j from row r when j >= ids[r] (predecessor mode)."""
    tile[np.arange(tile.shape[1])[None, :] >= ids[:, None]] = np.inf


def _k_smallest(tile, k):
    """The k smallest finite entries per row of tile (b, w), ordered by (value, column).

    Returns columns (b, k) int64 and values (b, k) float64, padded with -1 / +inf where a row has
    fewer than k finite entries (+inf marks excluded candidates).
    """
    b, width = tile.shape
    # The k-th smallest of a column sample bounds the row's k-th smallest from above, so every
    # entry <= that bound is a candidate: all of the top k and every tie at its boundary value.
    stride = max(1, min(_SAMPLE_STRIDE, width // (4 * k)))
    sample = tile[:, ::stride]
    if sample.shape[1] > k:
        bound = np.partition(sample, k - 1, axis=1)[:, k - 1]
    else:
        bound = np.full(b, np.inf)
    # An infinite bound (fewer than k finite samples) must still leave out the excluded entries.
    bound = np.minimum(bound, np.finfo(np.float64).max)
    rows, cols = np.nonzero(tile <= bound[:, None])
    vals = tile[rows, cols]
    order = np.lexsort((cols, vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = np.arange(rows.shape[0]) - np.searchsorted(rows, rows)
    keep = rank < k
    idx = np.full((b, k), -1, dtype=np.int64)
    dist = np.full((b, k), np.inf)
    idx[rows[keep], rank[keep]] = cols[keep]
    dist[rows[keep], rank[keep]] = vals[keep]
    return idx, dist


def _expected_mask(avail, k):
    return np.arange(k)[None, :] < avail[:, None]


# --- argument handling --------------------------------------------------------------------------


def _check_backend(backend):
    if not isinstance(backend, ResidualBackend):
        raise TypeError(
            "backend must be a covertreex.metrics.residual.ResidualBackend (see build_residual_backend), "
            f"got {type(backend).__name__}"
        )


def _as_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _as_nonnegative_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_same_dim(a, a_name, b, b_name):
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{a_name} has d={a.shape[1]} columns but {b_name} has d={b.shape[1]}")


def _euclidean_queries(points, queries, k, predecessor_mode):
    """Query coordinates (q, d), their ids (q,) in predecessor mode, and candidates per row (q,)."""
    n = points.shape[0]
    if predecessor_mode:
        if queries is not None:
            raise ValueError(
                "predecessor_mode=True queries the data set itself (row i sees points j < i); "
                "pass queries=None"
            )
        ids = np.arange(n, dtype=np.int64)
        return points, ids, np.minimum(ids, k)
    if queries is None:
        raise TypeError(
            "queries must be a (q, d) array of fresh points; queries=None is only meaningful with "
            "predecessor_mode=True"
        )
    queries = as_points(queries, "queries")
    _check_same_dim(queries, "queries", points, "points")
    return queries, None, np.full(queries.shape[0], min(k, n), dtype=np.int64)


def _residual_avail(query_ids, n, k, predecessor_mode):
    """Candidates per query: the j < i in predecessor mode, every other point otherwise."""
    if predecessor_mode:
        return np.minimum(query_ids, k)
    return np.full(query_ids.shape[0], min(k, n - 1), dtype=np.int64)


def _as_reference(reference, q, k):
    ref_idx, ref_dist = (np.asarray(a) for a in reference)
    if ref_idx.shape != (q, k) or ref_dist.shape != (q, k):
        raise ValueError(
            f"reference must be the (idx, dist) pair of shape ({q}, {k}) from the reference kNN, "
            f"got {ref_idx.shape} and {ref_dist.shape}"
        )
    return ref_idx.astype(np.int64), ref_dist.astype(np.float64)


def _as_result_dist(dist, shape):
    dist = np.asarray(dist)
    if dist.shape != shape or not np.issubdtype(dist.dtype, np.floating):
        raise AssertionError(f"dist must be a float array of shape {shape}, got {dist.dtype} {dist.shape}")
    return dist.astype(np.float64)


# --- checking -----------------------------------------------------------------------------------


class _RowNames:
    """How messages name result row r: by query id when there is one, else by row number."""

    def __init__(self, label, query_ids=None, tol=None):
        self.label, self.query_ids, self.tol = label, query_ids, tol

    def __call__(self, r):
        name = f"{self.label} {self.query_ids[r]}" if self.query_ids is not None else f"{self.label} {r}"
        return name if self.tol is None else f"{name} (tol {self.tol[r]:.3g})"


def _check_ids(idx, k, n, avail, query_ids, predecessor_mode, exclude_self):
    """Validate returned ids.

    Returns idx as (q, k) int64, the (q, k) mask of entries usable as neighbours (within the
    expected count, in range, first occurrence, allowed for the query) and problem messages.
    """
    q = avail.shape[0]
    idx = np.asarray(idx)
    if idx.shape != (q, k) or idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer):
        raise AssertionError(f"idx must be an integer array of shape ({q}, {k}), got {idx.dtype} {idx.shape}")
    idx = idx.astype(np.int64)
    names = _RowNames("query" if query_ids is not None else "query row", query_ids)
    expected = _expected_mask(avail, k)
    in_range = expected & (idx >= 0) & (idx < n)
    checks = [
        (~expected & (idx != -1), "ids where padding -1 was expected (fewer candidates than k)"),
        (expected & (idx == -1), "padding -1 where a neighbour was expected"),
        (expected & ((idx < -1) | (idx >= n)), f"ids outside [0, {n})"),
    ]
    if exclude_self and not predecessor_mode:
        checks.append((in_range & (idx == query_ids[:, None]), "the query itself returned as a neighbour"))
    if predecessor_mode:
        checks.append(
            (in_range & (idx >= query_ids[:, None]), "ids not below the query id (predecessor mode)")
        )
    problems = []
    bad = np.zeros(idx.shape, dtype=bool)
    for mask, what in checks:
        bad |= mask
        _report_rows(problems, mask.any(axis=1), what, names, [("ids", idx)])
    usable = expected & ~bad
    # Unusable entries get distinct sentinels >= n so that only real ids can collide.
    keyed = np.where(usable, idx, n + np.arange(k)[None, :])
    order = np.argsort(keyed, axis=1, kind="stable")
    ranked = np.take_along_axis(keyed, order, axis=1)
    repeat = np.zeros(idx.shape, dtype=bool)
    np.put_along_axis(repeat, order[:, 1:], ranked[:, 1:] == ranked[:, :-1], axis=1)
    _report_rows(problems, repeat.any(axis=1), "repeated ids", names, [("ids", idx)])
    return idx, usable & ~repeat, problems


def _found_per_row(idx, usable, evaluated, ref_idx, ref_dist, expected, avail, atol, n):
    """Reference neighbours found per row (q,), boundary ties excused (see ``check_euclidean_knn``)."""
    kth = np.full(avail.shape[0], np.inf)
    has = avail > 0
    kth[has] = ref_dist[has, avail[has] - 1]
    rows = np.arange(idx.shape[0])[:, None]
    got_keys = np.where(usable, rows * (n + 1) + idx, -1)
    ref_keys = np.where(expected, rows * (n + 1) + ref_idx, -2)
    got_in_ref = usable & np.isin(got_keys, ref_keys)
    ref_in_got = expected & np.isin(ref_keys, got_keys)
    extra_ties = (usable & ~got_in_ref & _close(evaluated, kth[:, None], atol)).sum(axis=1)
    missed_ties = (expected & ~ref_in_got & _close(ref_dist, kth[:, None], atol)).sum(axis=1)
    return got_in_ref.sum(axis=1) + np.minimum(extra_ties, missed_ties)


def _check_dist_layout(problems, idx, dist, expected, names):
    """Padding distances are +inf; rows ascend by distance with ties in ascending id order."""
    shown = [("ids", idx), ("dist", dist)]
    _report_rows(problems, (~expected & ~(dist == np.inf)).any(axis=1), "padding distances other than +inf",
                 names, shown)
    _report_rows(problems, (expected & np.isnan(dist)).any(axis=1), "NaN distances", names, shown)
    left, right = dist[:, :-1], dist[:, 1:]
    unsorted = expected[:, 1:] & ((left > right) | ((left == right) & (idx[:, :-1] >= idx[:, 1:])))
    _report_rows(problems, unsorted.any(axis=1), "rows not sorted by (distance, index)", names, shown)


def _report_rows(problems, bad_rows, what, names, shown):
    """Append one message for the rows flagged in bad_rows (q,), showing a few of them.

    shown: (caption, (q, k) array) pairs printed for each example row.
    """
    rows = np.flatnonzero(bad_rows)
    if rows.size == 0:
        return
    lines = [f"{what}: {rows.size} row(s), e.g."]
    for r in rows[:_REPORT_ROWS]:
        lines.append(f"  {names(r)}:")
        lines.extend(f"    {caption:<22} {np.asarray(values[r]).tolist()}" for caption, values in shown)
    problems.append("\n".join(lines))


def _raise(problems, headline):
    if problems:
        raise AssertionError(headline + ":\n- " + "\n- ".join(problems))


def _close(a, b, tol):
    """|a - b| <= tol elementwise; False wherever an infinity (padding) is involved."""
    with np.errstate(invalid="ignore"):
        return np.abs(a - b) <= tol


def _ratio(found, total):
    return 1.0 if total == 0 else float(found) / float(total)
