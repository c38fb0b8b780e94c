"""Every kNN answer equals the float64 brute-force reference (docs/design.md, "Float64 error rule").

Euclidean: same ids in the same order (ties go to the lower id) and distances within 1e-9.
Residual: float64 cannot reproduce tiny residual distances, so neighbour sets are compared in
|rho| units with ``reference.check_residual_knn`` (tol_i = c eps s2 / sqrt(p_i min p)).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from covertreex import CoverTree, Phases, Runtime
from covertreex import reference as ref
from covertreex.kernels import RBF, Matern52
from covertreex.metrics.residual import build_residual_backend

from conftest import (
    EUCLIDEAN,
    EUCLIDEAN_MAKERS,
    ORDERS,
    RESIDUAL,
    RESIDUAL_MAKERS,
    RESIDUAL_VARIANTS,
    SMALL_EUCLIDEAN_MAKERS,
    SMALL_RESIDUAL_MAKERS,
    TRAVERSALS,
    assert_euclidean_equal,
    assert_predecessor_shape,
    euclidean_data,
    euclidean_knn_excluding_self,
    fit,
    fit_all_variants,
    fitted,
    fresh_queries,
    gaussian,
    grid_queries,
    rbf_backend,
    residual_data,
)

EU_NAMES = sorted(EUCLIDEAN_MAKERS)
RES_NAMES = sorted(RESIDUAL_MAKERS)


def _queries_for(name, points):
    if name == "grid":
        return grid_queries(15, 2)
    return fresh_queries(points)


def _check_residual(backend, query_ids, idx, dist, k, predecessor_mode=False):
    recall = ref.check_residual_knn(backend, query_ids, idx, k, predecessor_mode=predecessor_mode,
                                    dist=dist)
    assert recall == 1.0


# --- Euclidean ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EU_NAMES)
def test_euclidean_queries_match_reference(name, traversal, batch_order):
    points = euclidean_data(name)
    tree = fitted(EUCLIDEAN, name, traversal, batch_order)
    queries = _queries_for(name, points)
    for k in (1, 10, 50):
        idx, dist = tree.knn(queries, k=k, return_distances=True)
        want = ref.euclidean_knn(points, queries, k)
        assert_euclidean_equal(idx, dist, *want)
        assert ref.check_euclidean_knn(points, queries, idx, dist, k, reference=want) == 1.0


@pytest.mark.parametrize("name", EU_NAMES)
def test_euclidean_self_query_excludes_only_self(name, traversal, batch_order):
    # knn(None) asks for each point's neighbours among the *other* points: duplicates of a
    # point are at distance 0 and must appear, the point itself must not.
    points = euclidean_data(name)
    tree = fitted(EUCLIDEAN, name, traversal, batch_order)
    k = 12
    idx, dist = tree.knn(None, k=k, return_distances=True)
    want_idx, want_dist = euclidean_knn_excluding_self(points, k)
    assert not (idx == np.arange(points.shape[0])[:, None]).any()
    assert_euclidean_equal(idx, dist, want_idx, want_dist)


@pytest.mark.parametrize("name", EU_NAMES)
def test_euclidean_predecessor_mode_matches_reference(name, traversal, batch_order):
    points = euclidean_data(name)
    tree = fitted(EUCLIDEAN, name, traversal, batch_order)
    for k in (1, 8):
        idx, dist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
        assert_predecessor_shape(idx, k)
        assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, None, k, predecessor_mode=True))


def test_euclidean_duplicates_listed_with_lowest_ids_first(traversal):
    # 12 points x 40 copies: a query equal to one of them has 40 ties at distance 0, and with
    # k < 40 only the lowest ids among them may be returned, in ascending order.
    points = euclidean_data("duplicates")
    tree = fitted(EUCLIDEAN, "duplicates", traversal)
    target = points[7]
    copies = np.flatnonzero((points == target).all(axis=1))
    assert copies.shape[0] == 40
    idx, dist = tree.knn(target[None, :], k=25, return_distances=True)
    np.testing.assert_array_equal(idx[0], copies[:25])
    assert np.all(dist[0] == 0.0)


def test_euclidean_ties_on_integer_grid(traversal, batch_order):
    # The centre of a unit square of the integer grid is equidistant (sqrt(0.5)) from its 4
    # corners and the next ring is at sqrt(2.5): asking for 2 of the 4 tied corners must return
    # the two lowest ids.
    points = euclidean_data("grid")
    tree = fitted(EUCLIDEAN, "grid", traversal, batch_order)
    query = np.array([[3.5, 6.5]])
    corners = np.flatnonzero(((points - query) ** 2).sum(axis=1) == 0.5)
    assert corners.shape[0] == 4
    idx, dist = tree.knn(query, k=2, return_distances=True)
    np.testing.assert_array_equal(idx[0], np.sort(corners)[:2])
    np.testing.assert_allclose(dist[0], np.sqrt(0.5), rtol=0, atol=1e-15)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8, 12, 16])
def test_euclidean_every_dimension(d):
    points = gaussian(400, d, seed=100 + d)
    queries = fresh_queries(points, q=40, seed=d)
    k = 7
    want = ref.euclidean_knn(points, queries, k)
    want_pred = ref.euclidean_knn(points, None, k, predecessor_mode=True)
    for tree in fit_all_variants(points).values():
        assert_euclidean_equal(*tree.knn(queries, k=k, return_distances=True), *want)
        assert_euclidean_equal(*tree.knn(None, k=k, return_distances=True, predecessor_mode=True), *want_pred)


def test_euclidean_tight_clusters_resolve_nanometre_scale(traversal):
    # With clusters 1e-9 wide the 5 nearest neighbours of a point are in its own cluster at
    # distances ~1e-9; the tree must rank them exactly, not treat the cluster as one point.
    points = euclidean_data("tight-clusters")
    tree = fitted(EUCLIDEAN, "tight-clusters", traversal)
    idx, dist = tree.knn(points[:30], k=5, return_distances=True)
    want = ref.euclidean_knn(points, points[:30], 5)
    assert_euclidean_equal(idx, dist, *want)
    assert np.all(dist[:, 1:] < 1e-8) and np.all(dist[:, 1:] > 0)


def test_euclidean_n5000(traversal):
    points = gaussian(5000, 3, seed=5000)
    queries = fresh_queries(points, q=200, seed=5)
    tree = fit(points, traversal)
    k = 16
    idx, dist = tree.knn(queries, k=k, return_distances=True)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, k))
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(pidx, k)
    assert_euclidean_equal(pidx, pdist, *ref.euclidean_knn(points, None, k, predecessor_mode=True))


# --- residual -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RES_NAMES)
def test_residual_all_points_match_reference(name, phases_variant, batch_order):
    backend = residual_data(name)
    tree = fitted(RESIDUAL, name, phases_variant, batch_order)
    n = backend.n
    k = 25  # k = 1 runs in the chosen-ids test below
    idx, dist = tree.knn(None, k=k, return_distances=True)
    assert idx.shape == (n, k) and idx.dtype == np.int64 and dist.dtype == np.float64
    assert not (idx == np.arange(n)[:, None]).any(), "a point is never its own neighbour"
    _check_residual(backend, None, idx, dist, k)


@pytest.mark.parametrize("name", RES_NAMES)
def test_residual_chosen_ids_match_reference(name, phases_variant, batch_order):
    backend = residual_data(name)
    tree = fitted(RESIDUAL, name, phases_variant, batch_order)
    n = backend.n
    # Unsorted, repeated, and the extreme ids: results come back in the order asked.
    ids = np.array([n - 1, 0, 5, 5, n // 2, 17, n - 1, 3], dtype=np.int64)
    for k in (1, 9):
        idx, dist = tree.knn(ids, k=k, return_distances=True)
        assert not (idx == ids[:, None]).any()
        _check_residual(backend, ids, idx, dist, k)
    # Asked one at a time (a different tile and frontier), each id is still answered exactly.
    for i in ids[:3]:
        one, one_dist = tree.knn(np.array([i]), k=k, return_distances=True)
        _check_residual(backend, np.array([i]), one, one_dist, k)


@pytest.mark.parametrize("name", RES_NAMES)
def test_residual_predecessor_mode_matches_reference(name, phases_variant, batch_order):
    backend = residual_data(name)
    tree = fitted(RESIDUAL, name, phases_variant, batch_order)
    for k in (1, 8):
        idx, dist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
        assert_predecessor_shape(idx, k)
        _check_residual(backend, None, idx, dist, k, predecessor_mode=True)


def test_residual_predecessor_mode_with_chosen_ids(phases_variant):
    backend = residual_data("rbf-d3")
    tree = fitted(RESIDUAL, "rbf-d3", phases_variant)
    ids = np.array([0, 1, 2, 400, 3, 64, 499], dtype=np.int64)
    k = 6
    idx, dist = tree.knn(ids, k=k, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(idx, k, query_ids=ids)
    _check_residual(backend, ids, idx, dist, k, predecessor_mode=True)


def test_residual_self_excluded_but_duplicates_included(phases_variant, batch_order):
    # 15 points x 24 copies: a copy's residual correlation with its twins is 1 (up to float
    # noise), with anything else far below, so its 23 twins are exactly its 23 nearest.
    backend = residual_data("duplicates")
    coords = backend.coords
    tree = fitted(RESIDUAL, "duplicates", phases_variant, batch_order)
    _, group = np.unique(coords, axis=0, return_inverse=True)
    group = group.ravel()
    twins_of = [np.flatnonzero(group == g) for g in range(group.max() + 1)]
    ref_dist = ref.residual_distances(backend, np.arange(backend.n), np.arange(backend.n))
    same = group[:, None] == group[None, :]
    assert ref_dist[same].max() < 1e-3 < ref_dist[~same].min()  # the premise above
    idx = tree.knn(None, k=30)
    for i in range(backend.n):
        twins = set(twins_of[group[i]].tolist()) - {i}
        assert len(twins) == 23
        assert set(idx[i, :23].tolist()) == twins, f"point {i}"
        assert i not in idx[i]


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8, 12, 16])
def test_residual_every_dimension(d):
    coords = gaussian(200, d, seed=200 + d)
    backend = rbf_backend(coords, 40, lengthscale=max(1.0, d / 4))
    k = 7
    for tree in fit_all_variants(backend).values():
        idx, dist = tree.knn(None, k=k, return_distances=True)
        _check_residual(backend, None, idx, dist, k)
        pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
        _check_residual(backend, None, pidx, pdist, k, predecessor_mode=True)


@pytest.mark.parametrize("variant", sorted(RESIDUAL_VARIANTS))
@pytest.mark.parametrize("name", ["tiny-p", "matern-perdim"])
def test_residual_every_phase_set_is_exact(name, variant):
    # docs/design.md, "Audit phases": every phase combination returns the same neighbours; the mixed set
    # (per-pair V dots with the GEMM kernel tile) is only exercised here and in the
    # generated-input and determinism tests.
    backend = residual_data(name)
    tree = fitted(RESIDUAL, name, variant, "random")
    idx, dist = tree.knn(None, k=10, return_distances=True)
    _check_residual(backend, None, idx, dist, 10)
    pidx, pdist = tree.knn(None, k=10, return_distances=True, predecessor_mode=True)
    _check_residual(backend, None, pidx, pdist, 10, predecessor_mode=True)


def test_residual_tiny_p_regime_is_exercised():
    # The tiny-p case must really be in the cancellation regime docs/design.md, "The residual-correlation metric", describes,
    # otherwise its exactness tests would not test what they claim.
    backend = residual_data("tiny-p")
    assert backend.coords.shape[1] == 3 and backend.v_matrix.shape[1] == backend.n // 2
    assert np.median(backend.p_diag) < 1e-5


def test_residual_matern_per_dimension_lengthscale_matters(phases_variant):
    # Per-dimension lengthscales must reach the tree's distances: the same coordinates with a
    # scalar lengthscale give a different neighbour structure, and both match their reference.
    per_dim = residual_data("matern-perdim")
    scalar = build_residual_backend(per_dim.coords, Matern52(lengthscale=1.0, variance=2.0),
                                    inducing_count=80)
    k = 10
    results = []
    for backend in (per_dim, scalar):
        idx, dist = fit(backend, phases_variant).knn(None, k=k, return_distances=True)
        _check_residual(backend, None, idx, dist, k)
        results.append(idx)
    assert (results[0] != results[1]).any(axis=1).mean() > 0.5


def test_residual_n2000(phases_variant):
    backend = rbf_backend(gaussian(2000, 3, seed=2000), 128)
    tree = fit(backend, phases_variant)
    ids = np.sort(np.random.default_rng(2).choice(2000, 300, replace=False))
    k = 20
    idx, dist = tree.knn(ids, k=k, return_distances=True)
    _check_residual(backend, ids, idx, dist, k)
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(pidx, k)
    _check_residual(backend, None, pidx, pdist, k, predecessor_mode=True)


# --- batch sizes, query blocks, sizes of n and k --------------------------------------------------


# batch_size=512 (one batch after the first few doublings) is the default of the fixture-wide
# tests above; these sweep the small batches on small sets.
@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("name", sorted(SMALL_EUCLIDEAN_MAKERS))
def test_euclidean_batch_sizes(name, batch_size, traversal, batch_order):
    points = euclidean_data(name)
    tree = fitted(EUCLIDEAN, name, traversal, batch_order, batch_size)
    queries = fresh_queries(points, q=30)
    k = 6
    idx, dist = tree.knn(queries, k=k, return_distances=True)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, k))
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    assert_euclidean_equal(pidx, pdist, *ref.euclidean_knn(points, None, k, predecessor_mode=True))


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("name", sorted(SMALL_RESIDUAL_MAKERS))
def test_residual_batch_sizes(name, batch_size, phases_variant, batch_order):
    backend = residual_data(name)
    tree = fitted(RESIDUAL, name, phases_variant, batch_order, batch_size)
    k = 6
    idx, dist = tree.knn(None, k=k, return_distances=True)
    _check_residual(backend, None, idx, dist, k)
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    _check_residual(backend, None, pidx, pdist, k, predecessor_mode=True)


@pytest.mark.parametrize("query_block", [1, 5])
def test_blocked_traversal_small_query_blocks(query_block):
    # query_block splits both the build's scan and the query walk into tiles; tiles of one or a
    # few rows must give the same answers as one big tile.
    points = euclidean_data("small-duplicates")
    tree = fitted(EUCLIDEAN, "small-duplicates", "blocked", "random", 7, query_block)
    queries = fresh_queries(points, q=30)
    idx, dist = tree.knn(queries, k=5, return_distances=True)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, 5))

    backend = residual_data("small-tiny-p")
    rtree = fitted(RESIDUAL, "small-tiny-p", "all-phases", "random", 7, query_block)
    ridx, rdist = rtree.knn(None, k=5, return_distances=True)
    _check_residual(backend, None, ridx, rdist, 5)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_euclidean_fewer_points_than_k(n, traversal):
    points = gaussian(n, 2, seed=n)
    queries = gaussian(4, 2, seed=50 + n)
    tree = fit(points, traversal)
    k = 8
    idx, dist = tree.knn(queries, k=k, return_distances=True)
    assert np.all(idx[:, n:] == -1) and np.all(np.isinf(dist[:, n:]))
    assert np.all(idx[:, :n] >= 0)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, k))
    sidx, sdist = tree.knn(None, k=k, return_distances=True)
    assert np.all((sidx != -1).sum(axis=1) == n - 1)
    assert_euclidean_equal(sidx, sdist, *euclidean_knn_excluding_self(points, k))
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(pidx, k)
    assert_euclidean_equal(pidx, pdist, *ref.euclidean_knn(points, None, k, predecessor_mode=True))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_residual_fewer_points_than_k(n, phases_variant):
    backend = rbf_backend(gaussian(n, 2, seed=n), n)
    tree = fit(backend, phases_variant)
    k = 8
    idx, dist = tree.knn(None, k=k, return_distances=True)
    assert np.all((idx != -1).sum(axis=1) == n - 1)
    assert np.all(idx[:, n - 1:] == -1) and np.all(np.isinf(dist[:, n - 1:]))
    _check_residual(backend, None, idx, dist, k)
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(pidx, k)
    _check_residual(backend, None, pidx, pdist, k, predecessor_mode=True)


def test_single_point_tree_answers_with_padding(traversal):
    tree = fit(np.array([[1.5, -2.0]]), traversal)
    idx, dist = tree.knn(np.array([[0.0, 0.0], [1.5, -2.0]]), k=3, return_distances=True)
    np.testing.assert_array_equal(idx, [[0, -1, -1], [0, -1, -1]])
    np.testing.assert_allclose(dist[:, 0], [2.5, 0.0], rtol=0, atol=1e-15)
    assert np.all(np.isinf(dist[:, 1:]))
    self_idx = tree.knn(None, k=2)
    np.testing.assert_array_equal(self_idx, [[-1, -1]])


@pytest.mark.parametrize("k_offset", [-1, 0, 5])
def test_euclidean_k_at_and_beyond_n(k_offset, traversal):
    # k = n - 1 is "all but one point", k = n and beyond must pad rather than invent neighbours.
    points = euclidean_data("small-duplicates")
    n = points.shape[0]
    k = n + k_offset
    tree = fitted(EUCLIDEAN, "small-duplicates", traversal)
    queries = fresh_queries(points, q=10)
    idx, dist = tree.knn(queries, k=k, return_distances=True)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, k))
    if k >= n:
        assert np.all(np.sort(idx[:, :n], axis=1) == np.arange(n))


@pytest.mark.parametrize("k_offset", [-1, 0, 5])
def test_residual_k_at_and_beyond_n(k_offset, phases_variant):
    backend = residual_data("small-tiny-p")
    n = backend.n
    k = n + k_offset
    tree = fitted(RESIDUAL, "small-tiny-p", phases_variant)
    idx, dist = tree.knn(None, k=k, return_distances=True)
    assert np.all((idx != -1).sum(axis=1) == min(k, n - 1))
    _check_residual(backend, None, idx, dist, k)


def test_return_distances_false_gives_the_same_ids(traversal, phases_variant):
    points = euclidean_data("gauss-d2")
    tree = fitted(EUCLIDEAN, "gauss-d2", traversal)
    queries = fresh_queries(points, q=20)
    idx_only = tree.knn(queries, k=5)
    assert isinstance(idx_only, np.ndarray)
    np.testing.assert_array_equal(idx_only, tree.knn(queries, k=5, return_distances=True)[0])
    rtree = fitted(RESIDUAL, "rbf-d3", phases_variant)
    np.testing.assert_array_equal(rtree.knn(None, k=5), rtree.knn(None, k=5, return_distances=True)[0])


# --- determinism ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, variant",
    [(EUCLIDEAN, s) for s in TRAVERSALS] + [(RESIDUAL, v) for v in RESIDUAL_VARIANTS],
)
def test_same_seed_same_tree_and_results(metric, variant):
    data = euclidean_data("duplicates") if metric == EUCLIDEAN else residual_data("rbf-d3")
    trees = [fit(data, variant, batch_order="random", batch_size=64, seed=7) for _ in range(2)]
    for field in ("levels", "parents", "radii", "child_ptr", "child_idx", "min_id_below"):
        np.testing.assert_array_equal(getattr(trees[0].arrays, field), getattr(trees[1].arrays, field))
    assert trees[0].arrays.root == trees[1].arrays.root
    queries = fresh_queries(data, q=30) if metric == EUCLIDEAN else None
    runs = [t.knn(queries, k=9, return_distances=True) for t in trees]
    runs.append(trees[0].knn(queries, k=9, return_distances=True))
    for idx, dist in runs[1:]:
        np.testing.assert_array_equal(idx, runs[0][0])
        np.testing.assert_array_equal(dist, runs[0][1])


def test_different_seed_changes_random_order_but_not_answers():
    # The seed only changes the insertion order; a seed that changed nothing would mean the
    # random order is not random, and a seed that changed answers would break exactness.
    points = euclidean_data("gauss-d3")
    a = fit(points, "pointwise", batch_order="random", seed=1)
    b = fit(points, "pointwise", batch_order="random", seed=2)
    assert a.arrays.root != b.arrays.root or not np.array_equal(a.arrays.parents, b.arrays.parents)
    queries = fresh_queries(points, q=40)
    for t in (a, b):
        idx, dist = t.knn(queries, k=5, return_distances=True)
        assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, 5))


# --- generated inputs -----------------------------------------------------------------------------

# A handful of values makes exact duplicates and exactly tied distances common.
VALUES = [-1.0, -0.5, 0.0, 1e-9, 0.25, 0.5, 1.0, 3.0]


@st.composite
def point_sets(draw, max_n=60, max_d=4):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    return draw(arrays(np.float64, (n, d), elements=st.sampled_from(VALUES)))


@pytest.mark.parametrize("seeds", [0, 1, 2])
def test_a_tight_bound_keeps_the_lower_id_of_a_tie_under_a_far_parent(seeds):
    """Found by test_hypothesis_euclidean: sixteen copies of 0 under a node at -1, and a query
    at 1e-9. The blocked walk tests a child by the gap |d(q, parent) - d(child, parent)|,
    here 1.000000001 - 1, whose rounding is that of 1, far above the gap. With the heap seeded
    at the exact k-th distance from the start, a test blind to that dropped node 1 and
    returned another copy (id 10 for k = 1)."""
    points = np.array([[-1.0]] + [[0.0]] * 16)
    query = np.array([[1e-9]])
    runtime = Runtime(metric="euclidean", traversal="blocked", phases=Phases.all(),
                      batch_order="natural", query_seeds=seeds)
    tree = CoverTree(runtime).fit(points)
    for k in (1, 3, 16):
        idx, dist = tree.knn(query, k=k, return_distances=True)
        assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, query, k))


@settings(max_examples=40, deadline=None)
@given(
    points=point_sets(),
    data=st.data(),
    k=st.integers(1, 12),
    traversal=st.sampled_from(TRAVERSALS),
    batch_order=st.sampled_from(ORDERS),
    batch_size=st.sampled_from([1, 3, 512]),
)
def test_hypothesis_euclidean(points, data, k, traversal, batch_order, batch_size):
    q = data.draw(st.integers(1, 10))
    queries = data.draw(arrays(np.float64, (q, points.shape[1]), elements=st.sampled_from(VALUES)))
    tree = fit(points, traversal, batch_order=batch_order, batch_size=batch_size)
    idx, dist = tree.knn(queries, k=k, return_distances=True)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, k))
    sidx, sdist = tree.knn(None, k=k, return_distances=True)
    assert_euclidean_equal(sidx, sdist, *euclidean_knn_excluding_self(points, k))
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(pidx, k)
    assert_euclidean_equal(pidx, pdist, *ref.euclidean_knn(points, None, k, predecessor_mode=True))


@settings(max_examples=40, deadline=None)
@given(
    coords=point_sets(),
    data=st.data(),
    k=st.integers(1, 12),
    variant=st.sampled_from(tuple(RESIDUAL_VARIANTS)),
    batch_order=st.sampled_from(ORDERS),
    batch_size=st.sampled_from([1, 3, 512]),
    kernel_cls=st.sampled_from([RBF, Matern52]),
    lengthscale=st.sampled_from([0.5, 1.0, 2.0]),
    variance=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_hypothesis_residual(coords, data, k, variant, batch_order, batch_size, kernel_cls,
                             lengthscale, variance):
    n = coords.shape[0]
    m = data.draw(st.integers(1, n))
    backend = build_residual_backend(coords, kernel_cls(lengthscale=lengthscale, variance=variance),
                                     inducing_count=m)
    tree = fit(backend, variant, batch_order=batch_order, batch_size=batch_size)
    idx, dist = tree.knn(None, k=k, return_distances=True)
    assert not (idx == np.arange(n)[:, None]).any()
    _check_residual(backend, None, idx, dist, k)
    pidx, pdist = tree.knn(None, k=k, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(pidx, k)
    _check_residual(backend, None, pidx, pdist, k, predecessor_mode=True)
