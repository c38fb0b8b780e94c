"""Blocked walks: worker threads change nothing but speed; chunked nopython tiles equal the
Python tile."""

from dataclasses import replace

import numpy as np
import pytest

from covertreex import CoverTree, Phases, Runtime
from covertreex.metrics.residual import build_residual_backend
from covertreex.metrics.residual.metric import ResidualMetric, exact_thresholds
from covertreex.metrics.residual.tile_kernels import (TILE_CHUNK,
                                                      _exp_nonpos_inplace, finish_chunk,
                                                      finish_dense, gram_direct,
                                                      residual_tile_kernel)
from covertreex.telemetry import KP_PAIRS, WB_PAIRS, new_counters, settle


def tile_plan(phases, **settings):
    return Runtime(metric="residual_correlation", phases=phases, **settings).plan.tiles


@pytest.fixture(scope="module")
def backend():
    coords = np.random.default_rng(11).standard_normal((1500, 3))
    return build_residual_backend(coords, inducing_count=100)


PHASE_SETS = {
    "all": Phases.all(),
    "python_loop": replace(Phases.all(), nopython_chunk_loop=False),
    "baseline": Phases.baseline(),
}


@pytest.mark.parametrize("label", list(PHASE_SETS))
def test_residual_results_do_not_depend_on_the_worker_count(backend, label):
    # Small blocks make many blocks per batch and per query run, so two threads interleave.
    runs = []
    for threads in (1, 2):
        rt = Runtime(metric="residual_correlation", phases=PHASE_SETS[label], threads=threads,
                     query_block=48, query_brute=0)
        tree = CoverTree(rt).fit(backend)
        idx, dist, report = tree.knn_report(None, k=7, predecessor_mode=True)
        runs.append((tree, idx, dist, report))
    (t1, i1, d1, r1), (t2, i2, d2, r2) = runs
    for field in ("levels", "parents", "radii", "parent_dist"):
        assert np.array_equal(getattr(t1.arrays, field), getattr(t2.arrays, field)), field
    assert np.array_equal(i1, i2) and np.array_equal(d1, d2)
    assert r1.pairs_evaluated == r2.pairs_evaluated
    assert r1.whitened_block_pairs == r2.whitened_block_pairs
    b1 = t1.build_report.summary()["whitened_block_pairs_sum"]
    assert b1 == t2.build_report.summary()["whitened_block_pairs_sum"]


def test_euclidean_blocked_results_do_not_depend_on_the_worker_count():
    rng = np.random.default_rng(5)
    points, queries = rng.standard_normal((2000, 4)), rng.standard_normal((300, 4))
    out = []
    for threads in (1, 2):
        rt = Runtime(traversal="blocked", threads=threads, query_block=32)
        out.append(CoverTree(rt).fit(points).knn(queries, k=5, return_distances=True))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


@pytest.mark.parametrize("nrows", [37, 148])
@pytest.mark.parametrize("label", ["all", "baseline"])
def test_chunked_nopython_tile_equals_the_python_tile(backend, label, nrows):
    """The direct Gram's last step of four rows partial (37 rows) and whole (148 rows)."""
    metric = ResidualMetric(backend, tile_plan(PHASE_SETS[label]))
    rng = np.random.default_rng(2)
    rows = rng.choice(backend.n, nrows, replace=False).astype(np.int64)
    # More columns than two chunks, the last one partial, in no particular order.
    cols = rng.choice(backend.n, 2 * TILE_CHUNK + 77, replace=False).astype(np.int64)
    expected = metric.tile(metric.data, rows, cols)
    counters = new_counters()
    every = np.zeros((0, 0), dtype=np.bool_)
    got = residual_tile_kernel(metric.data, metric.data, rows, cols, every,
                               *exact_thresholds(rows, cols), metric.workspace(rows.size), counters)
    # GEMMs of other shapes round differently; d = sqrt(1 - |rho|) magnifies that near 0, so
    # compare |rho| (the rounding of k - V.V over sqrt(p_i p_j); docs/design.md, "Float64
    # error rule").
    np.testing.assert_allclose(1 - got**2, 1 - expected**2, rtol=0, atol=1e-9)
    settle(counters)
    assert counters[WB_PAIRS] == counters[KP_PAIRS] == rows.size * cols.size
    # With a mask only the flagged pairs are defined; they must still match. The V Gram
    # skips rows with no flag among six columns: masks of 30 % and 5 %, and one whose first
    # chunk is 30 % flagged and the others 5 %. A chunk at least half flagged takes every
    # pair through finish_dense: a mask of 70 %.
    dense = rng.random((rows.size, cols.size)) < 0.3
    sparse = rng.random((rows.size, cols.size)) < 0.05
    mostly = rng.random((rows.size, cols.size)) < 0.7
    mixed = sparse.copy()
    mixed[:, :TILE_CHUNK] = dense[:, :TILE_CHUNK]
    for active in (dense, sparse, mixed, mostly):
        masked = residual_tile_kernel(metric.data, metric.data, rows, cols, active,
                                      *exact_thresholds(rows, cols), metric.workspace(rows.size),
                                      new_counters())
        np.testing.assert_allclose(1 - masked[active]**2, 1 - expected[active]**2, rtol=0,
                                   atol=1e-9)


def test_a_scan_chunk_of_consecutive_ids_equals_the_python_tile(backend):
    """Consecutive rows against consecutive ids, every pair (a brute-force scan's tile), take
    their V products from BLAS on V in place: the right columns, the partial last chunk too."""
    metric = ResidualMetric(backend, tile_plan(Phases.all()))
    rows = np.arange(300, 337, dtype=np.int64)
    cols = np.arange(200, 200 + 2 * TILE_CHUNK + 77, dtype=np.int64)
    expected = metric.tile(metric.data, rows, cols)
    got = residual_tile_kernel(metric.data, metric.data, rows, cols,
                               np.zeros((0, 0), dtype=np.bool_), *exact_thresholds(rows, cols),
                               metric.workspace(rows.size), new_counters())
    np.testing.assert_allclose(1 - got**2, 1 - expected**2, rtol=0, atol=1e-9)


def test_tile_share_compares_thread_time_with_thread_time(backend):
    # Tile counters sum over worker threads; the share must use the traversal's thread time
    # too, or two workers would report tiles covering more than all of the traversal.
    rt = Runtime(metric="residual_correlation", threads=2, query_block=48)
    report = CoverTree(rt).fit(backend).build_report
    assert all(b.traversal_thread_ms is not None for b in report.batches)
    summary = report.summary()
    assert summary["traversal_thread_ms_sum"] >= summary["whitened_block_ms_sum"]
    assert 0.0 < summary["tile_share_of_traversal"] <= 1.0


@pytest.mark.parametrize("kernel", ["rbf", "matern52_per_dimension"])
def test_gemm_kernel_provider_matches_the_broadcast_tile_within_1e_6(kernel):
    # Audit phase 2 acceptance: the |a|^2 + |b|^2 - 2ab kernel tile against the (rows x cols x d)
    # broadcast one, relative 1e-6, including coordinates far from the origin.
    from covertreex.kernels import RBF, Matern52

    coords = np.random.default_rng(8).standard_normal((700, 4)) * 3.0 + 50.0
    kern = RBF(1.5, 2.0) if kernel == "rbf" else Matern52([0.5, 1.0, 2.0, 4.0], 1.3)
    backend = build_residual_backend(coords, kernel=kern, inducing_count=60)
    gemm = ResidualMetric(backend, tile_plan(Phases.all()))
    broadcast = ResidualMetric(backend, tile_plan(replace(Phases.all(), gemm_kernel_provider=False)))
    rows, cols = np.arange(0, 700, 3), np.arange(700)
    fast, slow = gemm.kernel_tile(rows, cols), broadcast.kernel_tile(rows, cols)
    big = slow > 1e-12 * kern.variance  # relative error is defined where the kernel is not ~0
    assert big.mean() > 0.05
    np.testing.assert_allclose(fast[big], slow[big], rtol=1e-6, atol=0)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12 * kern.variance)


@pytest.mark.parametrize("b", [1, 2, 3, 4, 5, 7, 8, 9])
@pytest.mark.parametrize("f", [1, 2, 5, 6, 7, 11, 12, 13])
def test_direct_gram_equals_the_gemm_for_every_shape(b, f):
    """Steps of four rows by six columns, the last step of each clamped to the last row or
    column."""
    rng = np.random.default_rng(b * 10 + f)
    v = rng.standard_normal((40, 33))
    rows = rng.choice(40, b, replace=False)
    cols = rng.choice(40, f, replace=False).astype(np.int64)
    out = np.full((b, f), np.nan)
    every = np.zeros((0, 0), dtype=np.bool_)
    gram_direct(np.ascontiguousarray(v[rows]), v, cols, every, np.arange(b), 0, out)
    np.testing.assert_allclose(out, v[rows] @ v[cols].T, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("density", [0.02, 0.2, 0.6])
def test_direct_gram_sets_every_flagged_pair_and_skips_rows_without_flags(density):
    """Rows of vq are rows pos of a wider flag array, read from column c0; a row with no flag
    among a step's six columns is not computed there."""
    rng = np.random.default_rng(int(density * 100))
    v = rng.standard_normal((300, 33))
    rows = rng.choice(300, 23, replace=False)
    cols = rng.choice(300, 50, replace=False).astype(np.int64)
    pos = rng.permutation(30)[:23].astype(np.int64)
    c0 = 7
    active = rng.random((30, c0 + 50 + 4)) < density
    out = np.full((23, 50), np.nan)
    gram_direct(np.ascontiguousarray(v[rows]), v, cols, active, pos, c0, out)
    flags = active[pos, c0:c0 + 50]
    expected = v[rows] @ v[cols].T
    np.testing.assert_allclose(out[flags], expected[flags], rtol=1e-13, atol=1e-13)
    idle = np.repeat(~np.add.reduceat(flags, np.arange(0, 50, 6), axis=1).astype(bool), 6,
                     axis=1)[:, :50]
    assert idle.any()
    assert np.isnan(out[idle]).all()


def test_dense_finish_gives_finish_chunks_bits_on_flagged_pairs(backend):
    metric = ResidualMetric(backend, tile_plan(Phases.all()))
    rng = np.random.default_rng(3)
    rows = rng.choice(backend.n, 20, replace=False).astype(np.int64)
    cols = rng.choice(backend.n, 50, replace=False).astype(np.int64)
    ktile = metric.kernel_tile(rows, cols)
    gram = metric.v[rows] @ metric.v[cols].T
    gram[0, :5] = ktile[0, :5] + 5.0  # |rho| >= 1 for some pairs: distance 0
    active = rng.random((rows.size, cols.size)) < 0.6
    pos = np.arange(rows.size)
    flagged, dense = np.zeros((rows.size, cols.size)), np.zeros((rows.size, cols.size))
    finish_chunk(metric.inv_sqrt_p, rows, pos, cols, ktile, gram, active, 0, flagged)
    finish_dense(metric.inv_sqrt_p, rows, pos, cols, ktile, gram, 0, dense)
    np.testing.assert_array_equal(dense[active], flagged[active])
    assert (dense[0, :5] == 0).all()


def test_vectorised_exp_is_within_two_ulps_of_numpys_and_scales_after():
    """exp(x) * factor with exp's 2**k built from bits: from 0 down past the -700 clamp."""
    x = -np.concatenate([np.linspace(0.0, 50.0, 20001),
                         [0.0, 1e-300, 1e-10, 0.5, 700.0, 745.0, 800.0]])
    bits = np.empty(x.size, dtype=np.int64)
    for factor in (1.0, 0.37):
        got = x.copy()
        _exp_nonpos_inplace(got, bits, factor)
        unscaled = x.copy()
        _exp_nonpos_inplace(unscaled, bits, 1.0)
        np.testing.assert_array_equal(got, unscaled * factor)
        want = np.exp(np.maximum(x, -700.0))
        np.testing.assert_array_less(np.abs(unscaled - want), 2 * np.spacing(want))
