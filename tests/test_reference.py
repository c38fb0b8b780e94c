"""The float64 reference against naive O(n^2) computations (scipy cdist, full sorts)."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from covertreex import reference
from covertreex.kernels import RBF, Matern52
from covertreex.metrics.residual import ResidualBackend, build_residual_backend
from covertreex.reference import (
    check_euclidean_knn,
    check_residual_knn,
    euclidean_distances,
    euclidean_knn,
    residual_abs_rho,
    residual_distances,
    residual_knn,
    residual_tolerance,
)


def naive_knn(dist_matrix, k, allowed=None):
    """k nearest per row of a full distance matrix by (distance, index), padded with -1 / +inf."""
    q, n = dist_matrix.shape
    allowed = np.ones((q, n), dtype=bool) if allowed is None else allowed
    idx = np.full((q, k), -1)
    dist = np.full((q, k), np.inf)
    for r in range(q):
        cols = np.flatnonzero(allowed[r])
        order = np.lexsort((cols, dist_matrix[r, cols]))[:k]
        idx[r, : order.size] = cols[order]
        dist[r, : order.size] = dist_matrix[r, cols[order]]
    return idx, dist


def naive_abs_rho(backend):
    """Full |rho| matrix from an independent kernel evaluation (scipy cdist on scaled coordinates)."""
    kernel = backend.kernel
    ls = np.broadcast_to(np.asarray(kernel.lengthscale, dtype=float), (backend.coords.shape[1],))
    r2 = cdist(backend.coords / ls, backend.coords / ls, "sqeuclidean")
    if isinstance(kernel, RBF):
        kmat = kernel.variance * np.exp(-0.5 * r2)
    else:
        r = np.sqrt(5.0 * r2)
        kmat = kernel.variance * (1.0 + r + r * r / 3.0) * np.exp(-r)
    v = backend.v_matrix
    sp = np.sqrt(backend.p_diag)
    return np.minimum(np.abs((kmat - v @ v.T) / np.outer(sp, sp)), 1.0)


def with_duplicates(rng, n, d, copies=6):
    points = rng.standard_normal((n, d))
    points[rng.choice(n, copies, replace=False)] = points[rng.choice(n, 1)]
    return points


# --- Euclidean --------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 8, 16])
def test_euclidean_distances_match_cdist(d):
    rng = np.random.default_rng(d)
    x, y = rng.standard_normal((70, d)), with_duplicates(rng, 90, d)
    np.testing.assert_allclose(euclidean_distances(x, y), cdist(x, y), rtol=1e-14, atol=0)


def test_euclidean_distances_are_exact_far_from_the_origin():
    # |a|^2 + |b|^2 - 2ab would lose every digit of these 1e-3 distances at an offset of 1e6.
    rng = np.random.default_rng(0)
    x = 1e6 + 1e-3 * rng.standard_normal((20, 3))
    exact = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(euclidean_distances(x, x), exact, rtol=1e-13, atol=0)


@pytest.mark.parametrize("d", [1, 2, 5, 16])
@pytest.mark.parametrize("k", [1, 7, 40])
def test_euclidean_knn_matches_naive(d, k):
    rng = np.random.default_rng(10 * d + k)
    points = with_duplicates(rng, 300, d)
    queries = np.vstack([rng.standard_normal((25, d)), points[:5]])
    idx, dist = euclidean_knn(points, queries, k)
    want_idx, want_dist = naive_knn(cdist(queries, points), k)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-14, atol=0)
    assert idx.dtype == np.int64 and dist.dtype == np.float64
    assert check_euclidean_knn(points, queries, idx, dist, k) == 1.0


def test_euclidean_knn_breaks_exact_ties_by_lower_index():
    rng = np.random.default_rng(1)
    points = rng.integers(0, 3, size=(200, 2)).astype(float)  # 9 sites, about 22 copies each
    queries = rng.integers(0, 3, size=(15, 2)) + 0.5
    idx, dist = euclidean_knn(points, queries, 30)
    want_idx, want_dist = naive_knn(cdist(queries, points), 30)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(dist, want_dist)


@pytest.mark.parametrize("k", [1, 4, 300])
def test_euclidean_predecessor_mode_matches_naive(k):
    rng = np.random.default_rng(k)
    points = with_duplicates(rng, 120, 3)
    idx, dist = euclidean_knn(points, None, k, predecessor_mode=True)
    n = points.shape[0]
    allowed = np.arange(n)[None, :] < np.arange(n)[:, None]
    want_idx, want_dist = naive_knn(cdist(points, points), k, allowed)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-14, atol=0)
    assert (idx[0] == -1).all() and np.isinf(dist[0]).all()
    assert check_euclidean_knn(points, None, idx, dist, k, predecessor_mode=True) == 1.0


def test_euclidean_knn_pads_when_fewer_points_than_k():
    points = np.array([[0.0], [3.0], [1.0]])
    idx, dist = euclidean_knn(points, np.array([[0.9]]), 5)
    np.testing.assert_array_equal(idx, [[2, 0, 1, -1, -1]])
    np.testing.assert_allclose(dist, [[0.1, 0.9, 2.1, np.inf, np.inf]])


def test_blocked_paths_match_naive(monkeypatch):
    # Tiny tiles force several row blocks, sub-tiles and the sampled selection bound.
    monkeypatch.setattr(reference, "_TILE_ENTRIES", 2000)
    monkeypatch.setattr(reference, "_GEMM_ENTRIES", 9000)
    rng = np.random.default_rng(5)
    points = with_duplicates(rng, 700, 3)
    queries = rng.standard_normal((40, 3))
    idx, _ = euclidean_knn(points, queries, 6)
    np.testing.assert_array_equal(idx, naive_knn(cdist(queries, points), 6)[0])
    backend = build_residual_backend(points, RBF(lengthscale=0.3), inducing_count=40)
    rho = naive_abs_rho(backend)
    ids = rng.choice(700, 50, replace=False)
    for predecessor in (False, True):
        got, got_dist = residual_knn(backend, ids, 6, predecessor_mode=predecessor)
        cols = np.arange(700)[None, :]
        allowed = cols < ids[:, None] if predecessor else cols != ids[:, None]
        want, _ = naive_knn(np.sqrt(1.0 - rho[ids]), 6, allowed)
        np.testing.assert_array_equal(got, want)
        assert check_residual_knn(backend, ids, got, 6, predecessor, dist=got_dist) == 1.0


def test_selection_keeps_lowest_index_among_ties_at_the_boundary():
    rng = np.random.default_rng(2)
    tile = rng.integers(0, 4, size=(30, 500)).astype(float)
    tile[rng.random(tile.shape) < 0.3] = np.inf
    for k in (1, 5, 40):
        idx, dist = reference._k_smallest(tile, k)
        want_idx, want_dist = naive_knn(tile, k, np.isfinite(tile))
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(dist, want_dist)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    d=st.integers(1, 4),
    k=st.integers(1, 12),
    predecessor=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_euclidean_knn_property_on_tie_heavy_grids(n, d, k, predecessor, seed):
    rng = np.random.default_rng(seed)
    points = rng.integers(-2, 3, size=(n, d)).astype(float)
    if predecessor:
        queries, allowed = points, np.arange(n)[None, :] < np.arange(n)[:, None]
        idx, dist = euclidean_knn(points, None, k, predecessor_mode=True)
    else:
        queries, allowed = rng.integers(-2, 3, size=(5, d)).astype(float), None
        idx, dist = euclidean_knn(points, queries, k)
    want_idx, want_dist = naive_knn(cdist(queries, points), k, allowed)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(dist, want_dist)


# --- residual correlation ---------------------------------------------------------------------


BACKENDS = {
    "rbf-d3": lambda rng: build_residual_backend(with_duplicates(rng, 400, 3), inducing_count=64),
    "rbf-d8": lambda rng: build_residual_backend(rng.standard_normal((300, 8)), inducing_count=32),
    "matern-ard": lambda rng: build_residual_backend(
        with_duplicates(rng, 350, 3), Matern52(lengthscale=(0.5, 2.0, 1.0), variance=2.0), inducing_count=48
    ),
    # Many inducing points for few points in d=3: p collapses towards its 1e-9 floor.
    "tiny-p": lambda rng: build_residual_backend(rng.standard_normal((250, 3)), inducing_count=200),
    "d1": lambda rng: build_residual_backend(
        with_duplicates(rng, 200, 1), RBF(lengthscale=0.5), inducing_count=8
    ),
}


@functools.cache
def make_backend(name):
    """Backends are read-only, so every test may share one per name."""
    return BACKENDS[name](np.random.default_rng(sorted(BACKENDS).index(name)))


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return make_backend(request.param)


def test_tiny_p_backend_really_has_tiny_p():
    assert np.median(make_backend("tiny-p").p_diag) < 1e-6


def test_residual_abs_rho_matches_naive(backend):
    rng = np.random.default_rng(3)
    rows, cols = rng.choice(backend.n, 40), rng.choice(backend.n, 120)
    want = naive_abs_rho(backend)[np.ix_(rows, cols)]
    tol = residual_tolerance(backend, rows)
    got = residual_abs_rho(backend, rows, cols)
    assert got.shape == (40, 120) and got.dtype == np.float64
    assert (np.abs(got - want) <= tol[:, None]).all()
    np.testing.assert_allclose(residual_distances(backend, rows, cols), np.sqrt(1.0 - got), rtol=0, atol=0)


@pytest.mark.parametrize("predecessor", [False, True])
@pytest.mark.parametrize("k", [1, 8, 50])
def test_residual_knn_matches_naive(backend, predecessor, k):
    n = backend.n
    ids = np.random.default_rng(k).permutation(n)[:60]  # unsorted, to exercise the reordering
    ids[:3] = [0, 1, 5]  # predecessor rows with fewer than k candidates
    idx, dist = residual_knn(backend, ids, k, predecessor_mode=predecessor)
    assert idx.shape == (60, k) and idx.dtype == np.int64 and dist.dtype == np.float64

    rho = naive_abs_rho(backend)[ids]
    cols = np.arange(n)[None, :]
    allowed = cols < ids[:, None] if predecessor else cols != ids[:, None]
    want_idx, _ = naive_knn(np.sqrt(1.0 - rho), k, allowed)
    tol = residual_tolerance(backend, ids)[:, None]
    valid = want_idx >= 0
    np.testing.assert_array_equal(idx >= 0, valid)
    want_rho = np.where(valid, np.take_along_axis(rho, np.maximum(want_idx, 0), 1), 0.0)
    got_rho = np.where(valid, np.take_along_axis(rho, np.maximum(idx, 0), 1), 0.0)
    # Position by position in |rho|: the reference and the naive matrix differ by round-off only.
    assert (np.abs(got_rho - want_rho) <= tol).all()
    assert (np.abs(np.where(valid, 1.0 - dist**2, 0.0) - want_rho) <= tol).all()
    # Where the k + 1 best candidates are pairwise farther apart than the tolerance, ids agree exactly.
    top = -np.sort(-np.where(allowed, rho, -1.0), axis=1)[:, : k + 1]
    gap_counts = np.arange(top.shape[1] - 1)[None, :] + 1 < allowed.sum(axis=1)[:, None]
    clear = np.where(gap_counts, -np.diff(top, axis=1) > 2 * tol, True).all(axis=1)
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(idx[clear], want_idx[clear])
    assert check_residual_knn(backend, ids, idx, k, predecessor, dist=dist) == 1.0


def test_residual_knn_defaults_to_every_point_without_self():
    backend = make_backend("rbf-d8")
    idx, _ = residual_knn(backend, k=5)
    assert idx.shape == (backend.n, 5)
    assert (idx != np.arange(backend.n)[:, None]).all()
    np.testing.assert_array_equal(idx[[7, 40]], residual_knn(backend, [7, 40], k=5)[0])


def test_residual_duplicates_of_the_query_are_neighbours():
    rng = np.random.default_rng(4)
    coords = rng.standard_normal((300, 3))
    coords[[40, 17, 250]] = coords[5]
    backend = build_residual_backend(coords, inducing_count=30)
    idx, dist = residual_knn(backend, [5, 17], k=4)
    np.testing.assert_array_equal(idx[:, :3], [[17, 40, 250], [5, 40, 250]])
    assert (dist[:, :3] < 1e-6).all()


def test_residual_knn_pads_small_data_sets():
    backend = build_residual_backend(np.random.default_rng(0).standard_normal((4, 2)), inducing_count=2)
    idx, dist = residual_knn(backend, None, k=6)
    assert ((idx[:, :3] >= 0) & (idx[:, 3:] == -1)).all() and np.isinf(dist[:, 3:]).all()
    idx, dist = residual_knn(backend, None, k=2, predecessor_mode=True)
    np.testing.assert_array_equal(idx[:2], [[-1, -1], [0, -1]])
    single = build_residual_backend(np.zeros((1, 2)), inducing_count=1)
    idx, dist = residual_knn(single, None, k=3)
    assert (idx == -1).all() and np.isinf(dist).all()
    assert check_residual_knn(single, None, idx, 3) == 1.0


def test_residual_tolerance_formula():
    backend = make_backend("tiny-p")
    p = backend.p_diag
    want = 400.0 * np.finfo(float).eps * backend.kernel.variance / np.sqrt(p[[3, 9]] * p.min())
    np.testing.assert_allclose(residual_tolerance(backend, [3, 9]), want, rtol=1e-15)
    np.testing.assert_allclose(residual_tolerance(backend, None, c=800.0)[[3, 9]], 2 * want, rtol=1e-15)


# --- the checkers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def euclid_case():
    rng = np.random.default_rng(6)
    points = rng.standard_normal((200, 3))
    queries = rng.standard_normal((10, 3))
    idx, dist = euclidean_knn(points, queries, 5)
    return points, queries, idx, dist


def corrupt(arrays, row, col, value):
    out = arrays.copy()
    out[row, col] = value
    return out


@pytest.mark.parametrize(
    "mutate, message, recall",
    [
        (lambda p, q, i, d: (corrupt(i, 2, 4, np.argmax(cdist(q[2:3], p))), d),
         "neighbour sets differ", 0.98),
        (lambda p, q, i, d: (corrupt(i, 2, 4, i[2, 3]), d), "repeated ids", 0.98),
        (lambda p, q, i, d: (corrupt(i, 2, 4, 200), d), r"outside \[0, 200\)", 0.98),
        (lambda p, q, i, d: (corrupt(i, 2, 4, -1), d), "padding -1 where a neighbour", 0.98),
        (lambda p, q, i, d: (i, corrupt(d, 2, 1, d[2, 1] + 1e-6)),
         "differ from their exact re-evaluation", 1.0),
        (lambda p, q, i, d: (i[:, [1, 0, 2, 3, 4]], d[:, [1, 0, 2, 3, 4]]), "not sorted", 1.0),
    ],
)
def test_check_euclidean_knn_reports_defects(euclid_case, mutate, message, recall):
    points, queries, idx, dist = euclid_case
    bad_idx, bad_dist = mutate(points, queries, idx, dist)
    with pytest.raises(AssertionError, match=message):
        check_euclidean_knn(points, queries, bad_idx, bad_dist, 5)
    assert check_euclidean_knn(points, queries, bad_idx, bad_dist, 5, strict=False) == pytest.approx(recall)


def test_check_euclidean_knn_excuses_boundary_ties_only():
    points = np.array([[0.0], [1.0], [-1.0], [2.0], [1.0]])
    queries = np.array([[0.0]])
    idx, dist = euclidean_knn(points, queries, 2)
    np.testing.assert_array_equal(idx, [[0, 1]])  # 1, 2 and 4 tie at distance 1
    assert check_euclidean_knn(points, queries, np.array([[0, 4]]), dist, 2) == 1.0
    with pytest.raises(AssertionError, match="neighbour sets differ"):
        check_euclidean_knn(points, queries, np.array([[0, 3]]), np.array([[0.0, 2.0]]), 2)
    # A dropped tie is excused only by a returned point at the boundary distance, not beyond it.
    assert check_euclidean_knn(points, queries, np.array([[0, 1, 3]]), np.array([[0.0, 1.0, 2.0]]), 3,
                               strict=False) == pytest.approx(2 / 3)


def test_check_euclidean_knn_predecessor_mode():
    points = np.random.default_rng(7).standard_normal((30, 2))
    idx, dist = euclidean_knn(points, None, 3, predecessor_mode=True)
    assert check_euclidean_knn(points, None, idx, dist, 3, predecessor_mode=True) == 1.0
    with pytest.raises(AssertionError, match="not below the query id"):
        check_euclidean_knn(points, None, corrupt(idx, 10, 2, 10), dist, 3, predecessor_mode=True)
    with pytest.raises(AssertionError, match="where padding -1 was expected"):
        check_euclidean_knn(points, None, corrupt(idx, 1, 1, 0), dist, 3, predecessor_mode=True)
    with pytest.raises(AssertionError, match="padding distances other than"):
        check_euclidean_knn(points, None, idx, corrupt(dist, 1, 2, 5.0), 3, predecessor_mode=True)


def test_check_euclidean_knn_rejects_malformed_results(euclid_case):
    points, queries, idx, dist = euclid_case
    with pytest.raises(AssertionError, match=r"idx must be an integer array of shape \(10, 5\)"):
        check_euclidean_knn(points, queries, idx[:, :4], dist, 5)
    with pytest.raises(AssertionError, match="idx must be an integer array"):
        check_euclidean_knn(points, queries, idx.astype(float), dist, 5)
    with pytest.raises(AssertionError, match="dist must be a float array"):
        check_euclidean_knn(points, queries, idx, dist[:3], 5)
    assert check_euclidean_knn(points, queries, idx, dist, 5, reference=(idx, dist)) == 1.0


@pytest.fixture(scope="module")
def residual_case():
    backend = make_backend("rbf-d3")
    ids = np.array([3, 50, 120, 399, 7])
    idx, dist = residual_knn(backend, ids, 6)
    return backend, ids, idx, dist


def test_check_residual_knn_accepts_within_tolerance(residual_case):
    backend, ids, idx, dist = residual_case
    assert check_residual_knn(backend, ids, idx, 6, dist=dist) == 1.0
    # Swapping two neighbours whose |rho| agree within tol is not an error: the rule is positional.
    rho = 1.0 - dist**2
    tol = residual_tolerance(backend, ids)
    nudged = np.sqrt(1.0 - (rho - 0.4 * tol[:, None]))
    assert check_residual_knn(backend, ids, idx, 6, dist=nudged) == 1.0


@pytest.mark.parametrize(
    "mutate, message, recall",
    [
        (lambda b, ids, i: corrupt(i, 1, 5, ids[1]), "the query itself", 29 / 30),
        (lambda b, ids, i: corrupt(i, 1, 5, i[1, 0]), "repeated ids", 29 / 30),
        (lambda b, ids, i: corrupt(i, 1, 5, 10**6), "outside", 29 / 30),
        (lambda b, ids, i: corrupt(i, 1, 0, np.argmin(residual_abs_rho(b, ids[1:2], np.arange(b.n)))),
         "beyond tol", 29 / 30),
    ],
)
def test_check_residual_knn_reports_defects(residual_case, mutate, message, recall):
    backend, ids, idx, _ = residual_case
    bad = mutate(backend, ids, idx)
    with pytest.raises(AssertionError, match=message):
        check_residual_knn(backend, ids, bad, 6)
    assert check_residual_knn(backend, ids, bad, 6, strict=False) <= recall


def test_check_residual_knn_checks_distances_and_predecessors(residual_case):
    backend, ids, idx, dist = residual_case
    with pytest.raises(AssertionError, match="disagree with"):
        check_residual_knn(backend, ids, idx, 6, dist=corrupt(dist, 0, 0, dist[0, 0] * 0.5))
    with pytest.raises(AssertionError, match="not sorted"):
        check_residual_knn(backend, ids, idx[:, ::-1], 6, dist=dist[:, ::-1])
    pidx, pdist = residual_knn(backend, ids, 6, predecessor_mode=True)
    assert check_residual_knn(backend, ids, pidx, 6, True, dist=pdist) == 1.0
    with pytest.raises(AssertionError, match="padding -1 was expected"):
        check_residual_knn(backend, ids, corrupt(pidx, 0, 4, 0), 6, True)  # query 3 has 3 predecessors
    with pytest.raises(AssertionError, match="not below the query id"):
        check_residual_knn(backend, ids, corrupt(pidx, 4, 5, 9), 6, True)


# --- input validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda P, B: euclidean_knn(P, P[:2], 0), ValueError, "k must be a positive integer"),
        (lambda P, B: euclidean_knn(P, P[:2], 2.0), TypeError, "k must be a positive integer"),
        (lambda P, B: euclidean_knn(P, P[:2], True), TypeError, "k must be a positive integer"),
        (lambda P, B: euclidean_knn(P, P[:2], 2, predecessor_mode=True), ValueError, "pass queries=None"),
        (lambda P, B: euclidean_knn(P, None, 2), TypeError, "only meaningful with predecessor_mode"),
        (lambda P, B: euclidean_knn(P, P[:2, :2], 2), ValueError,
         "queries has d=2 columns but points has d=3"),
        (lambda P, B: euclidean_knn(P, P[:2], 2, predecessor_mode="yes"), TypeError, "True or False"),
        (lambda P, B: euclidean_knn(np.full((3, 3), np.nan), None, 2, True), ValueError, "NaN or inf"),
        (lambda P, B: euclidean_knn(P * 1e160, P[:2], 2), ValueError, "overflow above about 1e154"),
        (lambda P, B: euclidean_knn(P[0], P[:2], 2), ValueError, "must be 2-D"),
        (lambda P, B: euclidean_distances(P, P[:, :1]), ValueError, "x has d=3 columns but y has d=1"),
        (lambda P, B: residual_knn(P, None, 2), TypeError, "ResidualBackend"),
        (lambda P, B: residual_knn(B, [0, 99], 2), ValueError, r"out of range \[0, 20\)"),
        (lambda P, B: residual_knn(B, P, 2), TypeError, "1-D array of dataset ids"),
        (lambda P, B: residual_knn(B, [0.5], 2), TypeError, "integer ids"),
        (lambda P, B: residual_knn(B, [], 2), ValueError, "is empty"),
        (lambda P, B: residual_knn(B, None, -3), ValueError, "k must be a positive integer"),
        (lambda P, B: residual_abs_rho(B, [0], [20]), ValueError, "cols has ids out of range"),
        (lambda P, B: residual_tolerance(B, None, c=0), ValueError, "c must be a finite positive"),
        (lambda P, B: check_euclidean_knn(P, P[:1], np.zeros((1, 2), int), np.zeros((1, 2)), 2, atol=-1),
         ValueError, "atol must be"),
        (lambda P, B: check_residual_knn(B, [0], np.zeros((1, 2), int), 2, reference=(np.zeros((2, 2)),) * 2),
         ValueError, "reference must be"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(call, error, message):
    points = np.random.default_rng(9).standard_normal((20, 3))
    backend = build_residual_backend(points, inducing_count=5)
    with pytest.raises(error, match=message):
        call(points, backend)


def test_backend_from_factors_is_accepted():
    rng = np.random.default_rng(10)
    coords = rng.standard_normal((50, 2))
    backend = ResidualBackend.from_factors(
        0.1 * rng.standard_normal((50, 4)), rng.uniform(0.5, 1.0, 50), coords, RBF()
    )
    idx, dist = residual_knn(backend, None, 4)
    assert check_residual_knn(backend, None, idx, 4, dist=dist) == 1.0
