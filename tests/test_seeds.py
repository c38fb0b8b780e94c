"""Seeded heaps (Runtime(query_seeds=...), covertreex.query.seeds, docs/design.md, "Queries"):
the seed candidates are each row's nearest admissible points in coordinate space, a seeded walk
answers as the brute force does whatever its seeds are, and good seeds shorten the walk."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import covertreex.cover_tree as cover_tree_module
from covertreex import CoverTree, Runtime
from covertreex.metrics.residual import build_residual_backend
from covertreex.query.seeds import PREFIX_GROWTH, prefix_lengths, seed_candidates

from conftest import check_blocked_euclidean, check_blocked_residual

SEEDS = [0, 1, 2, 5]


@pytest.fixture(scope="module")
def backend():
    coords = np.random.default_rng(11).standard_normal((2500, 3))
    return build_residual_backend(coords, inducing_count=96, seed=11)


def test_prefixes_reach_at_least_a_growth_step_of_every_limit():
    n = 5000
    limit = np.arange(0, n + 50)
    got = prefix_lengths(limit, n)
    assert (got <= np.minimum(limit, n)).all()
    assert (got[limit >= n] == n).all()
    assert ((got[1:n] + 1) * PREFIX_GROWTH > limit[1:n]).all()
    assert got[0] == 0
    assert np.unique(got).size < 60  # a few k-d trees serve every row


@pytest.mark.parametrize("predecessor_mode", [False, True])
def test_candidates_are_the_nearest_admissible_ids_of_each_prefix(predecessor_mode):
    """Compared as sets: the walk offers them all, in any order."""
    rng = np.random.default_rng(12)
    coords = rng.standard_normal((1500, 3))
    ids = np.sort(rng.choice(1500, 300, replace=False)).astype(np.int64)
    limit = ids.copy() if predecessor_mode else np.full(ids.size, 1500, dtype=np.int64)
    s = 7
    got = seed_candidates(coords, coords[ids], limit, ids, s, workers=2)
    prefix = prefix_lengths(limit, 1500)
    for a, i in enumerate(ids):
        d = cdist(coords[i:i + 1], coords[:prefix[a]])[0]
        order = [j for j in np.argsort(d, kind="stable") if j != i][:s]
        kept = got[a][got[a] >= 0]
        assert (got[a][kept.size:] == -1).all()  # ids first, then padding
        np.testing.assert_array_equal(np.sort(kept), np.sort(order))
        assert (kept < limit[a]).all() and (kept != i).all()
        assert np.unique(kept).size == kept.size


def test_no_seeds_asked_gives_an_empty_array():
    coords = np.zeros((10, 2))
    out = seed_candidates(coords, coords[:3], np.full(3, 10), np.arange(3), 0, workers=1)
    assert out.shape == (3, 0)


@pytest.mark.parametrize("predecessor_mode", [False, True])
@pytest.mark.parametrize("seeds", SEEDS)
def test_residual_answers_equal_the_brute_force_for_every_seed_count(backend, seeds,
                                                                     predecessor_mode):
    check_blocked_residual(backend, predecessor_mode, query_block=32, query_seeds=seeds)


@pytest.mark.parametrize("seeds", SEEDS)
def test_euclidean_blocked_answers_equal_the_brute_force_for_every_seed_count(seeds):
    check_blocked_euclidean(13, 500, query_block=64, query_seeds=seeds)


def _far_seeds(coords, qcoords, limit, exclude, s, workers):
    """The worst admissible seeds: each row's farthest ids below its limit."""
    out = np.full((limit.shape[0], s), -1, dtype=np.int64)
    for a in range(limit.shape[0]):
        ok = np.flatnonzero((np.arange(coords.shape[0]) < limit[a])
                            & (np.arange(coords.shape[0]) != exclude[a]))
        far = ok[np.argsort(-cdist(qcoords[a:a + 1], coords[ok])[0], kind="stable")][:s]
        out[a, :far.size] = far
    return out


def test_the_walk_stays_exact_with_the_worst_seeds(backend, monkeypatch):
    """Seeds only set where the walk starts: far seeds give a loose k-th distance that the walk
    tightens, and every seed the walk reaches again is taken once."""
    monkeypatch.setattr(cover_tree_module, "seed_candidates", _far_seeds)
    check_blocked_residual(backend, True, k=8, query_block=16, query_seeds=2)


def test_seeds_shorten_single_row_walks(backend):
    """Pairs are counted, not timed: a row that starts from its nearest points' distances
    prunes from the first level on."""
    ids = np.arange(backend.n // 2, backend.n, 7)
    pairs = {}
    for seeds in (0, 2):
        runtime = Runtime(metric="residual_correlation", query_block=1, query_seeds=seeds,
                          query_brute=0)
        tree = CoverTree(runtime).fit(backend)
        pairs[seeds] = tree.knn_report(ids, 12, predecessor_mode=True)[2].pairs_evaluated
    assert pairs[2] < 0.9 * pairs[0], pairs


def test_seeded_and_unseeded_walks_find_the_same_ids(backend):
    results = {}
    for seeds in (0, 3):
        runtime = Runtime(metric="residual_correlation", query_seeds=seeds, query_brute=0)
        results[seeds] = CoverTree(runtime).fit(backend).knn(None, 10, predecessor_mode=True)
    np.testing.assert_array_equal(results[3], results[0])


@pytest.mark.parametrize("value, error", [(-1, ValueError), (True, TypeError), (2.0, TypeError),
                                          ("2", TypeError)])
def test_query_seeds_rejects_what_is_not_an_integer_at_least_0(value, error):
    with pytest.raises(error, match="query_seeds"):
        Runtime(query_seeds=value)
