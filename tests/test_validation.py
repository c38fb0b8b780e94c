"""Bad inputs fail early with ValueError or TypeError whose message names the argument.

Every case is checked with ``match`` on the argument's name, so an error that is raised for the
wrong reason (or deep inside Numba with an unhelpful message) fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from covertreex import CoverTree, Runtime, build_residual_backend
from covertreex import reference as ref
from covertreex.kernels import RBF, Matern52
from covertreex.metrics.residual import ResidualBackend
from covertreex.phases import Phases

from conftest import gaussian, rbf_backend

KERNELS = [RBF, Matern52]


@pytest.fixture(scope="module")
def points():
    return gaussian(40, 3, seed=0)


@pytest.fixture(scope="module")
def tree(points):
    return CoverTree(Runtime()).fit(points)


@pytest.fixture(scope="module")
def backend(points):
    return rbf_backend(points, 10)


@pytest.fixture(scope="module")
def rtree(backend):
    return CoverTree(Runtime(metric="residual_correlation")).fit(backend)


def with_bad_value(x, value, where=(3, 1)):
    y = np.array(x, dtype=np.float64)
    y[where] = value
    return y


# --- points, queries, coords ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_points(points, bad):
    with pytest.raises(ValueError, match=r"points contains NaN or inf .*row 3, column 1"):
        CoverTree(Runtime()).fit(with_bad_value(points, bad))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_queries(tree, points, bad):
    with pytest.raises(ValueError, match=r"queries contains NaN or inf"):
        tree.knn(with_bad_value(points[:5], bad, where=(2, 0)), k=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_coords(points, bad):
    with pytest.raises(ValueError, match=r"coords contains NaN or inf"):
        build_residual_backend(with_bad_value(points, bad), inducing_count=5)


def test_empty_point_set():
    with pytest.raises(ValueError, match=r"points is empty"):
        CoverTree(Runtime()).fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match=r"coords is empty"):
        build_residual_backend(np.empty((0, 3)), inducing_count=5)


def test_points_without_columns():
    with pytest.raises(ValueError, match=r"points must have at least one column"):
        CoverTree(Runtime()).fit(np.empty((5, 0)))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_points_not_2d(shape):
    with pytest.raises(ValueError, match=r"points must be 2-D"):
        CoverTree(Runtime()).fit(np.zeros(shape))


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_queries_not_2d(tree, shape):
    with pytest.raises(ValueError, match=r"queries must be 2-D"):
        tree.knn(np.zeros(shape), k=2)


@pytest.mark.parametrize("shape", [(6,), (2, 3, 4)])
def test_coords_not_2d(shape):
    with pytest.raises(ValueError, match=r"coords must be 2-D"):
        build_residual_backend(np.zeros(shape), inducing_count=2)


def test_points_of_strings_or_objects():
    with pytest.raises(TypeError, match=r"points must hold real numbers"):
        CoverTree(Runtime()).fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(TypeError, match=r"points must hold real numbers"):
        CoverTree(Runtime()).fit(np.array([[1 + 2j, 0], [0, 1]]))
    with pytest.raises(TypeError, match=r"points"):
        CoverTree(Runtime()).fit(None)


@pytest.mark.parametrize("d", [2, 4])
def test_query_dimension_mismatch(tree, d):
    with pytest.raises(ValueError, match=rf"queries have d={d} columns but the tree was fitted on d=3"):
        tree.knn(np.zeros((4, d)), k=2)


# --- k ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -1, -100])
def test_k_not_positive(tree, rtree, k):
    with pytest.raises(ValueError, match=r"k must be a positive integer"):
        tree.knn(np.zeros((1, 3)), k=k)
    with pytest.raises(ValueError, match=r"k must be a positive integer"):
        rtree.knn(None, k=k)


@pytest.mark.parametrize("k", [2.0, 2.5, True, False, "3", None, np.float64(3.0)])
def test_k_not_an_integer(tree, rtree, k):
    with pytest.raises(TypeError, match=r"k must be a positive integer"):
        tree.knn(np.zeros((1, 3)), k=k)
    with pytest.raises(TypeError, match=r"k must be a positive integer"):
        rtree.knn(None, k=k)


def test_numpy_integer_k_is_accepted(tree, rtree):
    # The rejections above must not throw out legitimate integer types along with bool.
    assert tree.knn(np.zeros((1, 3)), k=np.int64(3)).shape == (1, 3)
    assert rtree.knn(np.array([0]), k=np.int32(2)).shape == (1, 2)


@pytest.mark.parametrize("flag", ["return_distances", "predecessor_mode"])
@pytest.mark.parametrize("value", [1, "yes", None])
def test_flags_must_be_bool(rtree, flag, value):
    with pytest.raises(TypeError, match=flag):
        rtree.knn(None, k=2, **{flag: value})


# --- residual query ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [[40], [-1], [0, 5, 1000]])
def test_ids_out_of_range(rtree, ids):
    with pytest.raises(ValueError, match=r"queries has ids out of range \[0, 40\)"):
        rtree.knn(np.array(ids), k=2)


@pytest.mark.parametrize("ids", [np.array([1.0, 2.0]), np.array([0.5]), np.array([True, False])])
def test_ids_not_integers(rtree, ids):
    with pytest.raises(TypeError, match=r"queries must hold integer ids"):
        rtree.knn(ids, k=2)


def test_residual_queries_given_as_coordinates(rtree, points):
    with pytest.raises(TypeError, match=r"queries must be a 1-D array of dataset ids"):
        rtree.knn(points[:4], k=2)


def test_residual_queries_empty_or_3d(rtree):
    with pytest.raises(ValueError, match=r"queries is empty"):
        rtree.knn(np.array([], dtype=np.int64), k=2)
    with pytest.raises(ValueError, match=r"queries must be a 1-D array of dataset ids"):
        rtree.knn(np.zeros((1, 2, 3), dtype=np.int64), k=2)


def test_distance_matrix_validates_ids(rtree):
    with pytest.raises(ValueError, match=r"rows has ids out of range"):
        rtree.distance_matrix([0, 40], [1])
    with pytest.raises(TypeError, match=r"cols must hold integer ids"):
        rtree.distance_matrix([0], [1.5])


# --- kernels -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf])
def test_non_positive_scalar_lengthscale(kernel, value):
    with pytest.raises(ValueError, match=r"lengthscale must be a finite positive number"):
        kernel(lengthscale=value)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("value", [0.0, -2.0, np.nan])
def test_non_positive_per_dimension_lengthscale(kernel, value):
    with pytest.raises(ValueError, match=r"lengthscale\[1\] must be a finite positive number"):
        kernel(lengthscale=(1.0, value, 2.0))
    with pytest.raises(ValueError, match=r"lengthscale\[1\]"):
        kernel(lengthscale=np.array([1.0, value]))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf])
def test_non_positive_variance(kernel, value):
    with pytest.raises(ValueError, match=r"variance must be a finite positive number"):
        kernel(variance=value)


@pytest.mark.parametrize("kernel", KERNELS)
def test_lengthscale_of_wrong_type_or_shape(kernel):
    with pytest.raises(TypeError, match=r"lengthscale"):
        kernel(lengthscale="1.0")
    with pytest.raises(ValueError, match=r"lengthscale"):
        kernel(lengthscale=())
    with pytest.raises(ValueError, match=r"lengthscale"):
        kernel(lengthscale=np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"variance"):
        kernel(variance=True)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n_ls", [2, 4])
def test_lengthscale_length_must_match_d(points, kernel, n_ls):
    k = kernel(lengthscale=tuple(range(1, n_ls + 1)))
    with pytest.raises(ValueError, match=rf"{n_ls} lengthscales but the coordinates have d=3"):
        build_residual_backend(points, k, inducing_count=5)
    v = np.zeros((points.shape[0], 2))
    with pytest.raises(ValueError, match=r"lengthscales"):
        ResidualBackend.from_factors(v, np.ones(points.shape[0]), points, k)
    with pytest.raises(ValueError, match=r"lengthscales"):
        k(points, points)


@pytest.mark.parametrize("count", [0, -3])
def test_inducing_count_not_positive(points, count):
    with pytest.raises(ValueError, match=r"inducing_count must be a positive integer"):
        build_residual_backend(points, inducing_count=count)


@pytest.mark.parametrize("count", [2.5, True, "8"])
def test_inducing_count_not_an_integer(points, count):
    with pytest.raises(TypeError, match=r"inducing_count must be a positive integer"):
        build_residual_backend(points, inducing_count=count)


def test_kernel_of_wrong_type(points):
    with pytest.raises(TypeError, match=r"kernel must be covertreex.kernels.RBF or Matern52"):
        build_residual_backend(points, kernel="rbf", inducing_count=5)


# --- from_factors ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def factors(backend):
    return np.array(backend.v_matrix), np.array(backend.p_diag), np.array(backend.coords), backend.kernel


def test_from_factors_accepts_valid_factors(factors):
    # The rejections below must be about the damage done to each argument, not about factors in
    # general.
    v, p, coords, kernel = factors
    b = ResidualBackend.from_factors(v, p, coords, kernel)
    assert b.n == coords.shape[0] and b.v_matrix.shape == v.shape


@pytest.mark.parametrize("rows_delta", [-1, 1])
def test_from_factors_v_rows_mismatch(factors, rows_delta):
    v, p, coords, kernel = factors
    bad_v = np.zeros((v.shape[0] + rows_delta, v.shape[1]))
    with pytest.raises(ValueError, match=r"v_matrix has \d+ rows but coords has 40"):
        ResidualBackend.from_factors(bad_v, p, coords, kernel)


def test_from_factors_v_not_2d(factors):
    v, p, coords, kernel = factors
    with pytest.raises(ValueError, match=r"v_matrix must be 2-D"):
        ResidualBackend.from_factors(v.ravel(), p, coords, kernel)
    with pytest.raises(ValueError, match=r"v_matrix must be 2-D"):
        ResidualBackend.from_factors(v[:, :, None], p, coords, kernel)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_from_factors_v_not_finite(factors, bad):
    v, p, coords, kernel = factors
    with pytest.raises(ValueError, match=r"v_matrix contains NaN or inf"):
        ResidualBackend.from_factors(with_bad_value(v, bad), p, coords, kernel)


@pytest.mark.parametrize("shape", [(39,), (41,), (40, 1), ()])
def test_from_factors_p_wrong_shape(factors, shape):
    v, _, coords, kernel = factors
    with pytest.raises(ValueError, match=r"p_diag must have shape \(40,\)"):
        ResidualBackend.from_factors(v, np.ones(shape), coords, kernel)


@pytest.mark.parametrize("value", [0.0, -1e-12, -3.0])
def test_from_factors_p_not_positive(factors, value):
    v, p, coords, kernel = factors
    bad_p = p.copy()
    bad_p[7] = value
    with pytest.raises(ValueError, match=r"p_diag must be > 0 everywhere, got p_diag\[7\]"):
        ResidualBackend.from_factors(v, bad_p, coords, kernel)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_from_factors_p_not_finite(factors, bad):
    v, p, coords, kernel = factors
    bad_p = p.copy()
    bad_p[2] = bad
    with pytest.raises(ValueError, match=r"p_diag contains NaN or inf"):
        ResidualBackend.from_factors(v, bad_p, coords, kernel)


def test_from_factors_p_of_strings(factors):
    v, p, coords, kernel = factors
    with pytest.raises(TypeError, match=r"p_diag must hold real numbers"):
        ResidualBackend.from_factors(v, p.astype(str), coords, kernel)


def test_from_factors_coords_bad(factors):
    v, p, coords, kernel = factors
    with pytest.raises(ValueError, match=r"coords contains NaN or inf"):
        ResidualBackend.from_factors(v, p, with_bad_value(coords, np.nan), kernel)
    with pytest.raises(ValueError, match=r"coords must be 2-D"):
        ResidualBackend.from_factors(v, p, coords[:, 0], kernel)
    with pytest.raises(TypeError, match=r"kernel"):
        ResidualBackend.from_factors(v, p, coords, None)


# --- Runtime and CoverTree ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metric": "cosine"}, r"unknown metric 'cosine'"),
        ({"metric": "residual"}, r"unknown metric 'residual'"),
        ({"batch_order": "sorted"}, r"unknown batch_order 'sorted'"),
        ({"traversal": "dual"}, r"unknown traversal 'dual'"),
        ({"batch_size": 0}, r"batch_size must be a positive integer"),
        ({"query_block": -1}, r"query_block must be a positive integer"),
    ],
)
def test_runtime_rejects_unknown_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Runtime(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 2.0}, r"batch_size must be a positive integer"),
        ({"seed": 1.5}, r"seed must be an integer"),
        ({"seed": True}, r"seed must be an integer"),
        ({"phases": "all"}, r"phases must be a covertreex.Phases"),
    ],
)
def test_runtime_rejects_wrong_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        Runtime(**kwargs)


def test_runtime_rejects_the_pointwise_traversal_for_the_residual_metric():
    # The residual metric has one traversal, the blocked one, whose variants are phases.
    with pytest.raises(ValueError, match=r"traversal='pointwise' is a Euclidean traversal"):
        Runtime(metric="residual_correlation", traversal="pointwise")
    assert Runtime(metric="residual_correlation", traversal="blocked").traversal == "blocked"
    with pytest.raises(ValueError, match=r"unknown traversal 'walk'; expected None or one of"):
        Runtime(traversal="walk")


def test_k_whose_results_cannot_fit_in_memory_names_k_before_allocating(tree):
    for k in (10**12, 2**62):
        with pytest.raises(ValueError, match=rf"k={k} asks for 3 x {k} results, about .* GiB"):
            tree.knn(np.zeros((3, 3)), k=k)


def test_inducing_count_above_n_is_an_error_naming_both():
    points = np.random.default_rng(0).standard_normal((10, 2))
    with pytest.raises(ValueError, match=r"inducing_count=64 exceeds the 10 points"):
        build_residual_backend(points, inducing_count=64)
    # Left at its default, the count is min(512, n).
    assert build_residual_backend(points).v_matrix.shape == (10, 10)


def test_euclidean_runtime_fitted_with_a_backend(backend):
    with pytest.raises(TypeError, match=r"euclidean tree is fitted on an \(n, d\) array, got a ResidualBackend"):
        CoverTree(Runtime(metric="euclidean")).fit(backend)


def test_residual_runtime_fitted_with_points(points):
    with pytest.raises(TypeError, match=r"residual_correlation tree is fitted on a ResidualBackend, got ndarray"):
        CoverTree(Runtime(metric="residual_correlation", phases=Phases.all())).fit(points)


def test_cover_tree_needs_a_runtime():
    with pytest.raises(TypeError, match=r"runtime must be a covertreex.Runtime"):
        CoverTree("euclidean")


def test_predecessor_mode_with_euclidean_query_points(tree, points):
    with pytest.raises(ValueError, match=r"predecessor_mode=True needs queries=None"):
        tree.knn(points[:3], k=2, predecessor_mode=True)


@pytest.mark.parametrize("metric", ["euclidean", "residual_correlation"])
def test_unfitted_tree(metric):
    unfitted = CoverTree(Runtime(metric=metric))
    with pytest.raises(ValueError, match=r"this CoverTree is not fitted"):
        unfitted.knn(None, k=2)
    with pytest.raises(ValueError, match=r"this CoverTree is not fitted"):
        unfitted.distance_matrix([0], [0])


# --- overflow ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("traversal", ["pointwise", "blocked"])
def test_coordinates_whose_squared_differences_overflow(traversal):
    # Coordinates near 1e160 are finite and so are their distances, but squared differences
    # overflow to inf: every distance then ties at inf and the "neighbours" are just the lowest
    # ids. The reference refuses |x| > 1e150 ("rescale the data"); the tree must either refuse
    # too, naming the argument, or answer correctly - never return inf-tied garbage.
    x = gaussian(50, 2, seed=0)
    q = gaussian(5, 2, seed=1)
    want_idx, _ = ref.euclidean_knn(x, q, 3)
    try:
        tree = CoverTree(Runtime(traversal=traversal)).fit(x * 1e160)
        idx, dist = tree.knn(q * 1e160, k=3, return_distances=True)
    except ValueError as exc:
        assert "points" in str(exc)
        return
    assert np.all(np.isfinite(dist)), f"finite coordinates gave distances {dist[0].tolist()}"
    np.testing.assert_array_equal(idx, want_idx)


def test_query_coordinates_whose_squared_differences_overflow(tree, points):
    # Same for a well-scaled tree asked about a far-away query: the nearest point to (1e160, 0) is
    # the one with the largest first coordinate, at a finite distance.
    query = np.array([[1e160, 0.0]])[:, [0, 1, 1]]
    try:
        idx, dist = tree.knn(query, k=1, return_distances=True)
    except ValueError as exc:
        assert "queries" in str(exc)
        return
    assert np.isfinite(dist[0, 0]), f"finite coordinates gave distance {dist[0, 0]}"
    assert idx[0, 0] == int(np.argmax(points[:, 0]))
