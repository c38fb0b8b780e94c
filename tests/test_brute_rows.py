"""Brute force for early rows (Runtime(query_brute=...), docs/design.md, "Queries"): in
predecessor mode, rows with few candidates are answered by a dense scan of all of them, the
scan answers as the reference does, it evaluates exactly the pairs its blocks of consecutive
ids own, and it is never used outside predecessor mode."""

import numpy as np
import pytest

import covertreex.cover_tree as cover_tree_module
from covertreex import CoverTree, Runtime
from covertreex import reference as ref
from covertreex.metrics.residual import build_residual_backend
from covertreex.runtime import BRUTE_MAX, BRUTE_MIN, auto_brute

from conftest import assert_euclidean_equal, check_blocked_residual, gaussian

N = 4500  # over two SCAN_CHUNKs: the last rows scan in three tiles
BLOCK = 64


@pytest.fixture(scope="module")
def backend():
    coords = np.random.default_rng(21).standard_normal((N, 3))
    return build_residual_backend(coords, inducing_count=64, seed=21)


def _tree(backend, brute, **settings):
    runtime = Runtime(metric="residual_correlation", query_brute=brute, query_block=BLOCK,
                      **settings)
    return CoverTree(runtime).fit(backend)


@pytest.mark.parametrize("brute", [0, 1, 2100, N - 1, N])
@pytest.mark.parametrize("split", [0, 16])
def test_answers_equal_the_brute_force_wherever_the_scan_stops(backend, brute, split):
    """No rows, the first, a boundary inside a block's run, all but the last, and all."""
    check_blocked_residual(backend, True, query_block=BLOCK, query_brute=brute,
                           query_split=split)


@pytest.mark.parametrize("brute", [0, 2100, N])
def test_blocked_euclidean_predecessor_answers_equal_the_brute_force(brute):
    """The scan takes any metric's tile kernel: Euclidean ids in the reference's order, ties
    to the lower id (the data has exact duplicates)."""
    points = gaussian(N, 3, seed=22)
    points[N // 2:N // 2 + 40] = points[:40]
    runtime = Runtime(traversal="blocked", query_block=BLOCK, query_brute=brute)
    idx, dist = CoverTree(runtime).fit(points).knn(None, 9, return_distances=True,
                                                   predecessor_mode=True)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, None, 9, predecessor_mode=True))


def test_scanned_blocks_are_consecutive_ids_each_paying_its_largest_limit(backend):
    """Every row scanned: blocks of BLOCK consecutive ids from 0, each evaluating its rows
    against every id below its last one. Out of id order a block would pay more."""
    report = _tree(backend, N).knn_report(None, 8, predecessor_mode=True)[2]
    expected = sum((min(N, s + BLOCK) - s) * (min(N, s + BLOCK) - 1) for s in range(0, N, BLOCK))
    assert report.pairs_evaluated == expected


def test_scanned_answers_do_not_depend_on_the_worker_count(backend):
    one, two = (_tree(backend, 2100, threads=t).knn(None, 8, return_distances=True,
                                                     predecessor_mode=True) for t in (1, 2))
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1].view(np.int64), two[1].view(np.int64))


def test_queries_outside_predecessor_mode_never_scan(backend):
    """Every fitted point (limit n) or chosen ids: the walk, pair for pair, whatever
    query_brute says."""
    ids = np.arange(0, N, 7)
    for queries in (None, ids):
        walked = _tree(backend, 0).knn_report(queries, 8)
        scanned = _tree(backend, N).knn_report(queries, 8)
        np.testing.assert_array_equal(walked[0], scanned[0])
        assert walked[2].pairs_evaluated == scanned[2].pairs_evaluated


def test_rows_to_scan_get_no_seeds(backend, monkeypatch):
    """The seeds' k-d tree searches only for rows that will walk."""
    asked = []
    real = cover_tree_module.seed_candidates

    def recording(coords, qcoords, limit, exclude, s, workers):
        asked.append(limit.copy())
        return real(coords, qcoords, limit, exclude, s, workers)

    monkeypatch.setattr(cover_tree_module, "seed_candidates", recording)
    _tree(backend, 2100).knn_report(None, 8, predecessor_mode=True)
    assert np.array_equal(np.sort(np.concatenate(asked)), np.arange(2101, N))


def test_the_default_scans_up_to_half_the_tree_within_its_bounds(backend):
    """None: half the points, within 32768 .. 40960, for residual trees; never for Euclidean."""
    residual = Runtime(metric="residual_correlation")
    assert residual.query_brute is None
    assert residual.describe()["query_brute"] == {"value": None, "source": "default"}
    for n, want in ((1500, BRUTE_MIN), (65536, BRUTE_MIN), (73728, 36864), (131072, BRUTE_MAX),
                    (10 ** 7, BRUTE_MAX)):
        assert auto_brute("residual_correlation", n) == want, n
        assert auto_brute("euclidean", n) == 0
    assert Runtime(metric="residual_correlation", query_brute=0).plan.walk.brute == 0
    # This tree's default scans every predecessor-mode row: the pairs of the scan.
    default = CoverTree(Runtime(metric="residual_correlation", query_block=BLOCK)).fit(backend)
    assert (default.knn_report(None, 8, predecessor_mode=True)[2].pairs_evaluated
            == _tree(backend, N).knn_report(None, 8, predecessor_mode=True)[2].pairs_evaluated)


@pytest.mark.parametrize("value, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                          ("32768", TypeError)])
def test_query_brute_rejects_what_is_not_an_integer_at_least_0(value, error):
    with pytest.raises(error, match="query_brute"):
        Runtime(metric="residual_correlation", query_brute=value)
