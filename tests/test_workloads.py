"""The named presets match docs/design.md, "Harness", exactly, and their data is deterministic."""

import dataclasses

import numpy as np
import pytest

from covertreex.kernels import RBF
from covertreex_bench.workloads import (
    PRESETS,
    Preset,
    Workload,
    get_preset,
    load_workload,
    make_euclidean_queries,
    make_points,
    make_query_ids,
    scaled,
)

# docs/design.md, "Harness": name -> (metric, n, d, inducing, queries, k, predecessor_mode)
DESIGN_TABLE = {
    "gold-d3": ("residual_correlation", 32768, 3, 512, 1024, 50, False),
    "gold-d8": ("residual_correlation", 32768, 8, 512, 1024, 8, False),
    "vecchia-d3": ("residual_correlation", 32768, 3, 512, 32768, 50, True),
    "vecchia-65k": ("residual_correlation", 65536, 3, 512, 65536, 50, True),
    "vecchia-131k": ("residual_correlation", 131072, 3, 512, 131072, 50, True),
    "euclid-32k": ("euclidean", 32768, 8, None, 1024, 8, False),
    "quick": ("residual_correlation", 4096, 3, 256, 256, 50, False),
}


def test_preset_names_match_design():
    assert set(PRESETS) == set(DESIGN_TABLE)


@pytest.mark.parametrize("name", sorted(DESIGN_TABLE))
def test_preset_matches_design(name):
    p = PRESETS[name]
    metric, n, d, inducing, queries, k, pred = DESIGN_TABLE[name]
    assert (p.name, p.metric, p.n, p.d, p.inducing, p.queries, p.k, p.predecessor_mode) == (
        name, metric, n, d, inducing, queries, k, pred
    )
    assert p.seed == 42
    assert p.batch_size == 512
    if metric == "residual_correlation":
        assert p.kernel == RBF(lengthscale=1.0, variance=1.0)
    else:
        assert p.kernel is None


def test_presets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["quick"].n = 10


def test_get_preset():
    assert get_preset("gold-d3") is PRESETS["gold-d3"]
    assert get_preset(PRESETS["quick"]) is PRESETS["quick"]


@pytest.mark.parametrize("bad", ["gold-d4", "", "GOLD-D3", None])
def test_unknown_preset_lists_known_names(bad):
    with pytest.raises(ValueError) as err:
        get_preset(bad)
    for name in PRESETS:
        assert name in str(err.value)


def test_unknown_preset_in_data_helpers():
    with pytest.raises(ValueError, match="unknown preset"):
        make_points("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        load_workload("nope")


def test_make_points_is_the_design_formula():
    p = PRESETS["gold-d8"]
    x = make_points(p)
    assert x.shape == (32768, 8) and x.dtype == np.float64
    np.testing.assert_array_equal(x, np.random.default_rng(42).standard_normal((32768, 8)))
    np.testing.assert_array_equal(x, make_points("gold-d8"))


def test_make_query_ids_is_the_design_formula():
    ids = make_query_ids("gold-d3")
    expected = np.sort(np.random.default_rng(44).choice(32768, 1024, replace=False))
    np.testing.assert_array_equal(ids, expected)
    assert ids.dtype == np.int64
    assert np.all(np.diff(ids) > 0) and ids[0] >= 0 and ids[-1] < 32768
    np.testing.assert_array_equal(ids, make_query_ids("gold-d3"))


def test_all_points_queries_are_none():
    assert make_query_ids("vecchia-d3") is None


def test_euclidean_queries_are_the_design_formula():
    q = make_euclidean_queries("euclid-32k")
    np.testing.assert_array_equal(q, np.random.default_rng(45).standard_normal((1024, 8)))


def test_wrong_kind_of_queries_is_an_error():
    with pytest.raises(ValueError, match="fresh points"):
        make_query_ids("euclid-32k")
    with pytest.raises(ValueError, match="dataset ids"):
        make_euclidean_queries("quick")


def test_seed_changes_the_data():
    p = dataclasses.replace(PRESETS["quick"], seed=7)
    assert not np.array_equal(make_points(p), make_points("quick"))
    np.testing.assert_array_equal(make_points(p), np.random.default_rng(7).standard_normal((4096, 3)))


def test_invalid_presets_rejected():
    with pytest.raises(ValueError):
        Preset("x", "cosine", 10, 2, None, 5, 1, False, None)
    with pytest.raises(ValueError):
        Preset("x", "residual_correlation", 10, 2, None, 5, 1, False, RBF())
    with pytest.raises(ValueError):
        Preset("x", "residual_correlation", 10, 2, 4, 5, 1, True, RBF())  # predecessor needs q == n
    with pytest.raises(ValueError):
        Preset("x", "euclidean", 10, 2, None, 0, 1, False, None)


def test_scaled_keeps_the_shape_of_the_workload():
    small = scaled("vecchia-d3", 600)
    assert (small.n, small.queries, small.inducing, small.d, small.k, small.predecessor_mode) == (
        600, 600, 512, 3, 50, True
    )
    small = scaled("gold-d8", 300)
    assert (small.n, small.queries, small.inducing) == (300, 300, 300)
    small = scaled("euclid-32k", 2000)
    assert (small.n, small.queries, small.inducing) == (2000, 1024, None)


def test_load_workload_quick_residual():
    w = load_workload("quick")
    assert isinstance(w, Workload)
    np.testing.assert_array_equal(w.points, make_points("quick"))
    np.testing.assert_array_equal(w.query_ids, make_query_ids("quick"))
    assert w.queries is None
    assert w.fit_input is w.backend
    assert w.knn_queries is w.query_ids
    assert w.n_queries == 256
    b = w.backend
    assert b.v_matrix.shape == (4096, 256)
    expected_inducing = np.sort(np.random.default_rng(43).choice(4096, 256, replace=False))
    np.testing.assert_array_equal(b.inducing_ids, expected_inducing)
    assert b.kernel == RBF(lengthscale=1.0, variance=1.0)
    np.testing.assert_array_equal(b.coords, w.points)


def test_load_workload_is_deterministic():
    p = scaled("gold-d3", 700)
    a, b = load_workload(p), load_workload(p)
    np.testing.assert_array_equal(a.backend.v_matrix, b.backend.v_matrix)
    np.testing.assert_array_equal(a.backend.p_diag, b.backend.p_diag)
    np.testing.assert_array_equal(a.query_ids, b.query_ids)


def test_load_workload_euclidean():
    w = load_workload("euclid-32k")
    assert w.backend is None and w.query_ids is None
    assert w.points.shape == (32768, 8) and w.queries.shape == (1024, 8)
    assert w.fit_input is w.points
    assert w.knn_queries is w.queries


def test_load_workload_all_points():
    w = load_workload(scaled("vecchia-d3", 500))
    assert w.query_ids is None and w.knn_queries is None
    assert w.n_queries == 500
