"""Shared data makers, residual backends and fitted-tree helpers for the cover-tree tests.

Trees are immutable, so fitted trees are cached per process: the exactness and invariant tests
look at the same trees without building them twice. Sizes are kept small (n <= 2000, one case
at 5000) because the whole suite must run in a few minutes on two cores, Numba compilation
included.

Test modules import the helpers with ``from conftest import ...``; that resolves to this file as
long as no other conftest.py (without __init__.py) is collected before them.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

from covertreex import CoverTree, Phases, Runtime, build_residual_backend
from covertreex import reference as ref
from covertreex.kernels import RBF, Matern52
from covertreex.metrics.residual import ResidualBackend

EUCLIDEAN = "euclidean"
RESIDUAL = "residual_correlation"
TRAVERSALS = ("pointwise", "blocked")
ORDERS = ("natural", "random", "hilbert")
EPS = np.finfo(np.float64).eps


# --- data makers --------------------------------------------------------------------------------


def gaussian(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def duplicates(n_distinct, copies, d, seed=0):
    """n_distinct points, each repeated ``copies`` times, rows shuffled.

    Shuffling puts copies of one point at unrelated ids, so "ties go to the lower id" is
    tested across the whole id range rather than within runs of neighbouring ids.
    """
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_distinct, d))
    return np.repeat(base, copies, axis=0)[rng.permutation(n_distinct * copies)]


def tight_clusters(n_clusters, per_cluster, d, scale=1e-9, seed=0):
    """Clusters of width ``scale`` around standard-normal centres, rows shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d))
    pts = np.repeat(centres, per_cluster, axis=0) + scale * rng.standard_normal((n_clusters * per_cluster, d))
    return pts[rng.permutation(pts.shape[0])]


def multiscale(n_per_scale, d, scales=(1e-9, 1e-4, 1.0), seed=0):
    """Clusters whose widths span many levels, so the tree gets both very deep and shallow parts."""
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal(d) + s * rng.standard_normal((n_per_scale, d)) for s in scales]
    pts = np.concatenate(parts)
    return pts[rng.permutation(pts.shape[0])]


def integer_grid(side, d):
    """All integer points of [0, side)^d: many exactly equal distances, many exact powers of two."""
    axes = np.meshgrid(*[np.arange(side, dtype=np.float64)] * d, indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def grid_queries(side, d, seed=0, q=60):
    """Queries on the half-integer lattice: exact ties among the grid points around them."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 * side, size=(q, d)) / 2.0


def fresh_queries(points, q=80, seed=1):
    """Fresh Gaussian queries plus exact copies of data points (distance-0 ties) and midpoints."""
    rng = np.random.default_rng(seed)
    n, d = points.shape
    spread = max(float(np.std(points)), 1e-12)
    fresh = points.mean(axis=0) + spread * rng.standard_normal((q, d))
    copies = points[rng.integers(0, n, size=min(q, 20))]
    a, b = rng.integers(0, n, size=(2, min(q, 20)))
    mid = 0.5 * (points[a] + points[b])
    return np.concatenate([fresh, copies, mid])


# --- residual backends --------------------------------------------------------------------------


def rbf_backend(coords, inducing_count, lengthscale=1.0, variance=1.0, seed=42):
    return build_residual_backend(coords, RBF(lengthscale=lengthscale, variance=variance),
                                  inducing_count=inducing_count, seed=seed)


def matern_backend(coords, inducing_count, lengthscale=1.0, variance=1.0, seed=42):
    return build_residual_backend(coords, Matern52(lengthscale=lengthscale, variance=variance),
                                  inducing_count=inducing_count, seed=seed)


# Named data sets. Each maker is deterministic; results are cached by name.
EUCLIDEAN_MAKERS = {
    "gauss-d1": lambda: gaussian(300, 1, seed=1),
    "gauss-d2": lambda: gaussian(400, 2, seed=2),
    "gauss-d3": lambda: gaussian(1000, 3, seed=3),
    "gauss-d8": lambda: gaussian(600, 8, seed=8),
    "gauss-d16": lambda: gaussian(500, 16, seed=16),
    "duplicates": lambda: duplicates(12, 40, 3, seed=4),
    "tight-clusters": lambda: tight_clusters(8, 60, 3, scale=1e-9, seed=5),
    "multiscale": lambda: multiscale(150, 2, seed=6),
    "grid": lambda: integer_grid(15, 2),
}

RESIDUAL_MAKERS = {
    "rbf-d1": lambda: rbf_backend(gaussian(200, 1, seed=1), 20),
    "rbf-d3": lambda: rbf_backend(gaussian(500, 3, seed=3), 64),
    # d=3 with half the points inducing: median p ~ 1e-6, the cancellation-prone regime.
    "tiny-p": lambda: rbf_backend(gaussian(400, 3, seed=7), 200),
    "rbf-d8": lambda: rbf_backend(gaussian(300, 8, seed=8), 48),
    # l=4 keeps kernel values between d=16 Gaussian points away from 0 (l=1 gives rho ~ 0 everywhere).
    "rbf-d16": lambda: rbf_backend(gaussian(300, 16, seed=16), 40, lengthscale=4.0),
    "matern-perdim": lambda: matern_backend(gaussian(400, 4, seed=9), 80,
                                            lengthscale=(0.5, 1.0, 2.0, 4.0), variance=2.0),
    "rbf-perdim": lambda: rbf_backend(gaussian(300, 2, seed=10), 50, lengthscale=(0.3, 3.0), variance=0.5),
    "duplicates": lambda: rbf_backend(duplicates(15, 24, 3, seed=4), 40),
    "tight-clusters": lambda: rbf_backend(tight_clusters(8, 40, 3, scale=1e-9, seed=5), 48),
}

# Small sets for the batch-size sweep, where batch_size=1 means one insertion round per point.
SMALL_EUCLIDEAN_MAKERS = {
    "small-gauss": lambda: gaussian(150, 2, seed=11),
    "small-duplicates": lambda: duplicates(15, 10, 2, seed=12),
}
SMALL_RESIDUAL_MAKERS = {
    "small-tiny-p": lambda: rbf_backend(gaussian(100, 3, seed=13), 50),
    "small-duplicates": lambda: matern_backend(duplicates(10, 10, 2, seed=12), 20, lengthscale=(0.7, 1.5)),
}


@functools.cache
def euclidean_data(name):
    makers = {**EUCLIDEAN_MAKERS, **SMALL_EUCLIDEAN_MAKERS}
    pts = makers[name]()
    pts.setflags(write=False)  # shared across tests through the cache
    return pts


@functools.cache
def residual_data(name):
    makers = {**RESIDUAL_MAKERS, **SMALL_RESIDUAL_MAKERS}
    return makers[name]()


def dataset(metric, name):
    return euclidean_data(name) if metric == EUCLIDEAN else residual_data(name)


def metric_of(data):
    return RESIDUAL if isinstance(data, ResidualBackend) else EUCLIDEAN


# --- fitting ------------------------------------------------------------------------------------

# Euclidean traversals are chosen by Runtime.traversal. The residual metric always takes the
# blocked tile traversal (Runtime rejects a traversal for it); its variants are the audit phases
# that change how distances are computed: 1 (GEMM vs per-pair dot products for V), 2 (GEMM-norm
# vs broadcast kernel tile) and 3 (conflict graph reusing vs recomputing batch distances).
# docs/design.md, "Audit phases": every combination returns the same neighbours.
# "brute-rows" answers every predecessor-mode row by brute force (Runtime.query_brute); the
# other variants walk the tree for every row. The library's default would scan every
# predecessor-mode row of data sets this small, so each variant pins it.
RESIDUAL_VARIANTS = {
    "all-phases": Phases.all(),
    "baseline": Phases.baseline(),
    "pair-dots-gemm-kernel": replace(Phases.all(), block_gemm=False, pairwise_reuse=False),
    "brute-rows": Phases.all(),
}
RESIDUAL_BRUTE = {"brute-rows": np.iinfo(np.int64).max}
VARIANTS = {EUCLIDEAN: TRAVERSALS, RESIDUAL: tuple(RESIDUAL_VARIANTS)}


def runtime_for(metric, variant=None, **kwargs):
    """Runtime for one metric and one traversal variant (a traversal, or a residual phase set).

    Phases are always passed explicitly, so COVERTREEX_PHASE_* variables cannot change what a
    test exercises.
    """
    if metric == EUCLIDEAN:
        return Runtime(metric=metric, traversal=variant, phases=Phases.all(), **kwargs)
    phases = RESIDUAL_VARIANTS[variant or "all-phases"]
    kwargs.setdefault("query_brute", RESIDUAL_BRUTE.get(variant, 0))
    return Runtime(metric=metric, phases=phases, **kwargs)


def fit(data, variant=None, batch_order="hilbert", batch_size=512, seed=42, query_block=256):
    """Fit a tree on points (Euclidean) or a ResidualBackend (residual), metric inferred.

    variant: a traversal ("pointwise", "blocked") for Euclidean data, a RESIDUAL_VARIANTS key for
    a backend; None for the defaults.
    """
    runtime = runtime_for(metric_of(data), variant, batch_order=batch_order, batch_size=batch_size,
                          seed=seed, query_block=query_block)
    return CoverTree(runtime).fit(data)


def fit_all_variants(data, **kwargs):
    """{variant: tree} over every traversal variant of the data's metric (both strategies for
    Euclidean, the phase sets for residual)."""
    return {v: fit(data, v, **kwargs) for v in VARIANTS[metric_of(data)]}


@functools.cache
def fitted(metric, name, variant, batch_order="hilbert", batch_size=512, query_block=256):
    """Cached tree over the named data set (trees never change, so sharing them is safe)."""
    return fit(dataset(metric, name), variant, batch_order=batch_order, batch_size=batch_size,
               query_block=query_block)


# --- reference helpers --------------------------------------------------------------------------


def euclidean_knn_excluding_self(points, k):
    """Reference for Euclidean ``knn(None)``: each point's k nearest others (duplicates included).

    Ask the reference for k + 1 neighbours of every point among all points; dropping the point
    itself (or, when more than k lower-id duplicates push it out, the last column) leaves the
    k best others with the reference's (distance, lower id) order.
    """
    n = points.shape[0]
    idx, dist = ref.euclidean_knn(points, points, k + 1)
    out_i = np.full((n, k), -1, dtype=np.int64)
    out_d = np.full((n, k), np.inf)
    for i in range(n):
        keep = idx[i] != i
        if keep.all():
            keep[-1] = False
        row_i, row_d = idx[i][keep], dist[i][keep]
        out_i[i, : row_i.shape[0]] = row_i[:k]
        out_d[i, : row_d.shape[0]] = row_d[:k]
    pad = out_i == -1
    out_d[pad] = np.inf
    return out_i, out_d


def assert_euclidean_equal(idx, dist, ref_idx, ref_dist, atol=1e-9):
    """Same ids in the same order (ties by lower id) and distances within atol.

    The tree and the reference both sum coordinate differences in column order, so equal
    distances come out bitwise equal on both sides and the order of ties is well defined.
    """
    assert idx.dtype == np.int64 and dist.dtype == np.float64
    assert idx.shape == ref_idx.shape and dist.shape == ref_dist.shape
    bad_rows = np.flatnonzero((idx != ref_idx).any(axis=1))
    assert bad_rows.size == 0, (
        f"{bad_rows.size} rows differ from the reference, e.g. row {bad_rows[0]}: "
        f"got {idx[bad_rows[0]].tolist()} {dist[bad_rows[0]].tolist()}, "
        f"want {ref_idx[bad_rows[0]].tolist()} {ref_dist[bad_rows[0]].tolist()}"
    )
    pad = ref_idx == -1
    assert np.all(np.isinf(dist[pad]))
    assert np.allclose(dist[~pad], ref_dist[~pad], rtol=0.0, atol=atol)


def assert_predecessor_shape(idx, k, query_ids=None):
    """Row i holds exactly min(k, i) real ids, all < i, followed by -1 padding."""
    q = idx.shape[0]
    ids = np.arange(q) if query_ids is None else np.asarray(query_ids)
    counts = (idx != -1).sum(axis=1)
    np.testing.assert_array_equal(counts, np.minimum(k, ids))
    real = idx != -1
    assert np.all(idx[real] < np.broadcast_to(ids[:, None], idx.shape)[real])
    # padding sits at the end of each row
    assert np.all(np.diff(real.astype(np.int8), axis=1) <= 0)


def residual_pair_tolerance(backend, rows, cols):
    """(len(rows), len(cols)) bound on the difference of two float64 evaluations of d(i, j).

    Derivation (docs/design.md, "The residual-correlation metric"): c = k(x_i, x_j) - V_i . V_j, rho = c / sqrt(p_i p_j).
    - V part: a dot product of m terms in any summation order (GEMM tile or Numba loop) errs by
      at most gamma_m |V_i||V_j| ~ (m + 1) eps |V_i||V_j| (Higham, Accuracy and Stability, 3.1).
    - kernel part: the GEMM kernel provider (phase 2) forms r2 = |a|^2 + |b|^2 - 2 a.b from scaled
      coordinates a, b, which errs by up to 2 (d + 2) eps (|a|^2 + |b|^2); |dk/dr2| <= s2 for RBF
      (s2 / 2) and Matern 5/2 (5 s2 / 6); exp and the products add a few ulps, taken as 8 eps s2.
      |a|^2 is the larger of the raw and the centred scaled norm, so the bound holds whichever
      the provider uses.
    - the stored p are the metric's data, not a computed quantity.
    So |delta rho_ij| <= delta_ij = eps [(m + 1)|V_i||V_j| + s2 (8 + 2 (d + 2)(|a_i|^2 + |a_j|^2))]
    / sqrt(p_i p_j). Since |sqrt(a) - sqrt(b)| <= sqrt(|a - b|), one computed d = sqrt(1 - |rho|)
    is within sqrt(delta_ij) (+ a few eps for 1 - |rho| and sqrt) of the exact value, and two
    computations, the build's and the checker's, within twice that.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    vnorm, anorm2 = _tolerance_terms(backend)
    v, p = backend.v_matrix, backend.p_diag
    m, d = v.shape[1], backend.coords.shape[1]
    s2 = backend.kernel.variance
    kernel_term = s2 * (8.0 + 2.0 * (d + 2) * (anorm2[rows][:, None] + anorm2[cols][None, :]))
    delta = ((m + 1) * vnorm[rows][:, None] * vnorm[cols][None, :] + kernel_term) * EPS
    delta /= np.sqrt(p[rows][:, None] * p[cols][None, :])
    return 2.0 * np.sqrt(delta) + 8.0 * EPS


_TOLERANCE_TERMS = {}


def _tolerance_terms(backend):
    key = id(backend)
    if key not in _TOLERANCE_TERMS:
        v = backend.v_matrix
        xs = backend.kernel.scale(backend.coords)
        raw = np.einsum("ij,ij->i", xs, xs)
        centred = xs - xs.mean(axis=0)
        _TOLERANCE_TERMS[key] = (backend, np.sqrt(np.einsum("ij,ij->i", v, v)),
                                 np.maximum(raw, np.einsum("ij,ij->i", centred, centred)))
    return _TOLERANCE_TERMS[key][1:]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=TRAVERSALS)
def traversal(request):
    """Euclidean traversal traversal."""
    return request.param


# The fixture-wide matrix runs the two ends of the phase ladder; the mixed set runs in the
# generated-input, determinism and batch-size tests.
MAIN_RESIDUAL_VARIANTS = ("all-phases", "baseline")


@pytest.fixture(params=MAIN_RESIDUAL_VARIANTS)
def phases_variant(request):
    """Residual phase set (the residual metric's counterpart of the traversal)."""
    return request.param


@pytest.fixture(params=ORDERS)
def batch_order(request):
    return request.param


def check_blocked_residual(backend, predecessor_mode, k=12, **settings):
    """A residual tree with Runtime(**settings) answers queries (every third id, or every
    point in predecessor mode) as the brute force does, distances included. Every row walks
    the tree unless settings give query_brute."""
    queries = None if predecessor_mode else np.arange(0, backend.n, 3)
    runtime = Runtime(metric="residual_correlation", **{"query_brute": 0, **settings})
    idx, dist = CoverTree(runtime).fit(backend).knn(
        queries, k, return_distances=True, predecessor_mode=predecessor_mode)
    ref.check_residual_knn(backend, queries, idx, k, predecessor_mode=predecessor_mode,
                           dist=dist)


def check_blocked_euclidean(seed, q, k=9, **settings):
    """A blocked Euclidean tree with Runtime(**settings) on 3000 points in d=4 answers q fresh
    queries as the brute force does."""
    rng = np.random.default_rng(seed)
    points, queries = rng.standard_normal((3000, 4)), rng.standard_normal((q, 4))
    runtime = Runtime(traversal="blocked", **settings)
    idx, dist = CoverTree(runtime).fit(points).knn(queries, k, return_distances=True)
    ref.check_euclidean_knn(points, queries, idx, dist, k)


def assert_rho_within_rule(backend, rows, got, expected):
    """Residual distances got and expected (q, f) of query ids rows (q,) agree in
    |rho| = 1 - d^2 within the float64 rule (docs/design.md): two exact evaluations that sum
    V's products in different orders (BLAS kernels, tile shapes) differ by less than it.
    Infinite entries (padding) must match as such."""
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    gap = np.abs((1 - got[finite] ** 2) - (1 - expected[finite] ** 2))
    tol = np.broadcast_to(ref.residual_tolerance(backend, rows)[:, None], finite.shape)
    np.testing.assert_array_less(gap, tol[finite])
