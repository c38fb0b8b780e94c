"""A fitted tree is a value: fitting does not change the unfitted tree, nothing the tree holds
can be written, and neither the caller's arrays nor queries can change its answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from covertreex import CoverTree, Runtime, build_residual_backend
from covertreex.kernels import Matern52
from covertreex.metrics.residual import ResidualBackend

from conftest import fit, gaussian, runtime_for

TREE_FIELDS = ("levels", "parents", "radii", "child_ptr", "child_idx", "min_id_below")
BACKEND_FIELDS = ("coords", "v_matrix", "p_diag", "kernel_diag", "inducing_ids")


@pytest.fixture(scope="module")
def points():
    return gaussian(300, 3, seed=21)


@pytest.fixture(scope="module")
def backend(points):
    return build_residual_backend(points, Matern52(lengthscale=(0.5, 1.0, 2.0)), inducing_count=40)


@pytest.fixture(params=["pointwise", "blocked", "residual"])
def fitted_tree(request, points, backend):
    if request.param == "residual":
        return fit(backend)
    return fit(points, request.param)


def _queries_of(tree, points):
    if tree.runtime.metric == "euclidean":
        return gaussian(25, points.shape[1], seed=5)
    return np.array([0, 7, 299, 7], dtype=np.int64)


def _array_fields(obj):
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if isinstance(getattr(obj, f.name), np.ndarray)}


def _reachable_arrays(obj, path="tree", seen=None, depth=0):
    """Every ndarray reachable from obj through dataclass fields, attributes and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 4:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield path, obj
        return
    if isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from _reachable_arrays(item, f"{path}[{i}]", seen, depth + 1)
        return
    if isinstance(obj, (str, bytes, int, float, bool, type(None), Runtime)) or callable(obj):
        return
    attrs = vars(obj) if hasattr(obj, "__dict__") else {}
    if dataclasses.is_dataclass(obj):
        attrs = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)} | attrs
    for name, value in attrs.items():
        yield from _reachable_arrays(value, f"{path}.{name}", seen, depth + 1)


# --- fit ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "residual_correlation"])
def test_fit_returns_a_new_tree_and_leaves_the_unfitted_one(metric, points, backend):
    unfitted = CoverTree(runtime_for(metric))
    data = points if metric == "euclidean" else backend
    fitted_ = unfitted.fit(data)
    assert fitted_ is not unfitted
    assert fitted_.runtime == unfitted.runtime
    assert unfitted.arrays is None and unfitted.metric is None
    with pytest.raises(ValueError, match="not fitted"):
        unfitted.knn(None, k=3)
    # The unfitted tree can still be fitted again, to the same result.
    again = unfitted.fit(data)
    for name in TREE_FIELDS:
        np.testing.assert_array_equal(getattr(again.arrays, name), getattr(fitted_.arrays, name))


def test_fitting_another_data_set_leaves_the_first_tree(points):
    unfitted = CoverTree(runtime_for("euclidean", "pointwise"))
    first = unfitted.fit(points)
    before = {k: v.copy() for k, v in _array_fields(first.arrays).items()}
    queries = gaussian(10, 3, seed=3)
    answer = first.knn(queries, k=4, return_distances=True)
    unfitted.fit(points[::-1] * 3.0)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(first.arrays, k), v)
    for got, want in zip(first.knn(queries, k=4, return_distances=True), answer):
        np.testing.assert_array_equal(got, want)


def test_tree_and_arrays_are_frozen(fitted_tree):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted_tree.arrays = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted_tree.arrays.levels = np.zeros(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted_tree.arrays.root = 1


def test_tree_arrays_are_read_only(fitted_tree):
    arrays = _array_fields(fitted_tree.arrays)
    assert set(TREE_FIELDS) <= set(arrays)
    for name, arr in arrays.items():
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = arr[0]


def test_backend_arrays_are_read_only(backend):
    for name in BACKEND_FIELDS:
        arr = getattr(backend, name)
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0


def test_every_array_the_tree_holds_is_read_only(fitted_tree):
    # "A fitted tree never changes": that holds only if no array the tree keeps (its arrays, the
    # metric's data and caches, any traversal layout) can be written through the public object.
    writeable = [path for path, arr in _reachable_arrays(fitted_tree) if arr.flags.writeable]
    assert not writeable, f"writeable arrays reachable from a fitted tree: {writeable}"


# --- the caller's arrays ---------------------------------------------------------------------------


def test_mutating_the_callers_points_after_fit(points):
    mine = points.copy()
    tree = fit(mine, "pointwise")
    queries = gaussian(20, 3, seed=9)
    before = tree.knn(queries, k=5, return_distances=True)
    self_before = tree.knn(None, k=5)
    mine[:] = 0.0
    mine[::2] *= -1.0
    assert mine.flags.writeable  # fit must not freeze the caller's array
    after = tree.knn(queries, k=5, return_distances=True)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(tree.knn(None, k=5), self_before)


def test_mutating_the_callers_coords_after_building_a_backend(points):
    coords = points.copy()
    backend = build_residual_backend(coords, inducing_count=30)
    tree = fit(backend)
    before = tree.knn(None, k=6, return_distances=True)
    assert coords.flags.writeable
    assert not np.shares_memory(coords, backend.coords)
    coords[:] = 1.0
    after = tree.knn(None, k=6, return_distances=True)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_from_factors_leaves_the_callers_arrays_writeable_and_unshared(backend):
    v = np.array(backend.v_matrix)
    p = np.array(backend.p_diag)
    coords = np.array(backend.coords)
    wrapped = ResidualBackend.from_factors(v, p, coords, backend.kernel)
    for name, arr in (("v_matrix", v), ("p_diag", p), ("coords", coords)):
        assert arr.flags.writeable, f"from_factors froze the caller's {name}"
        assert not np.shares_memory(arr, getattr(wrapped, name)), name
    tree = fit(wrapped)
    before = tree.knn(None, k=4, return_distances=True)
    v[:] = 0.0
    p[:] = 1.0
    coords[:] = 0.0
    after = tree.knn(None, k=4, return_distances=True)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_fit_accepts_read_only_input_and_leaves_it_so(points):
    frozen = points.copy()
    frozen.setflags(write=False)
    tree = fit(frozen, "blocked")
    assert not frozen.flags.writeable
    assert tree.knn(frozen[:3], k=1)[:, 0].tolist() == [0, 1, 2]


# --- queries ---------------------------------------------------------------------------------------


def test_knn_changes_neither_tree_nor_backend_nor_queries(fitted_tree, points, backend):
    arrays_before = {k: v.copy() for k, v in _array_fields(fitted_tree.arrays).items()}
    backend_before = {k: getattr(backend, k).copy() for k in BACKEND_FIELDS}
    queries = _queries_of(fitted_tree, points)
    queries_before = queries.copy()
    first = fitted_tree.knn(queries, k=6, return_distances=True)
    fitted_tree.knn(None, k=6, return_distances=True)
    fitted_tree.knn(None, k=3, predecessor_mode=True)
    fitted_tree.distance_matrix([0, 1, 2], [3, 4])
    for k, v in arrays_before.items():
        np.testing.assert_array_equal(getattr(fitted_tree.arrays, k), v, err_msg=k)
    for k, v in backend_before.items():
        np.testing.assert_array_equal(getattr(backend, k), v, err_msg=k)
    np.testing.assert_array_equal(queries, queries_before)
    assert queries.flags.writeable
    # The same question after all the others gets the same answer.
    again = fitted_tree.knn(queries, k=6, return_distances=True)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])


def test_results_belong_to_the_caller(fitted_tree, points):
    # Returned arrays are fresh: writing into one answer must not leak into the next.
    queries = _queries_of(fitted_tree, points)
    idx, dist = fitted_tree.knn(queries, k=4, return_distances=True)
    want_idx, want_dist = idx.copy(), dist.copy()
    idx[:] = -7
    dist[:] = 0.0
    idx2, dist2 = fitted_tree.knn(queries, k=4, return_distances=True)
    np.testing.assert_array_equal(idx2, want_idx)
    np.testing.assert_array_equal(dist2, want_dist)
