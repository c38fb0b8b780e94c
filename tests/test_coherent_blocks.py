"""Coherent query blocks (Runtime(query_split=...), docs/design.md, "Queries"): a block that
splits into halves answers exactly as whole blocks and the brute force do, and a block whose
rows lie in two far-apart groups evaluates fewer pairs once it splits."""

import numpy as np
import pytest

from covertreex import CoverTree, Runtime
from covertreex.metrics.residual import build_residual_backend

from conftest import check_blocked_euclidean, check_blocked_residual

SPLITS = [0, 1, 3, 16, 10**6]


@pytest.fixture(scope="module")
def backend():
    coords = np.random.default_rng(5).standard_normal((2500, 3))
    return build_residual_backend(coords, inducing_count=96, seed=5)


@pytest.mark.parametrize("predecessor_mode", [False, True])
@pytest.mark.parametrize("block", [1, 5, 64])
@pytest.mark.parametrize("split", SPLITS)
def test_residual_answers_equal_the_brute_force_for_every_split(backend, split, block,
                                                                predecessor_mode):
    check_blocked_residual(backend, predecessor_mode, query_block=block, query_split=split)


@pytest.mark.parametrize("split", SPLITS)
def test_euclidean_blocked_answers_equal_the_brute_force_for_every_split(split):
    check_blocked_euclidean(6, 700, query_block=128, query_split=split)


def test_a_block_of_two_far_groups_splits_and_evaluates_fewer_pairs():
    """Hilbert order puts each group in one half of the block; the halves share no frontier
    below the top levels, so only a walk that splits stops paying for the other group."""
    rng = np.random.default_rng(7)
    points = np.concatenate([rng.standard_normal((2000, 3)), rng.standard_normal((2000, 3)) + 50])
    queries = np.concatenate([rng.standard_normal((32, 3)), rng.standard_normal((32, 3)) + 50])
    pairs, results = {}, {}
    for split in (0, 8):
        tree = CoverTree(Runtime(traversal="blocked", query_block=64, query_split=split)).fit(points)
        idx, dist, report = tree.knn_report(queries, 5)
        pairs[split], results[split] = report.pairs_evaluated, (idx, dist)
    assert pairs[8] < 0.7 * pairs[0], pairs
    np.testing.assert_array_equal(results[8][0], results[0][0])
    np.testing.assert_array_equal(results[8][1], results[0][1])


@pytest.mark.parametrize("value, error", [(-1, ValueError), (True, TypeError), (2.0, TypeError),
                                          ("16", TypeError)])
def test_query_split_rejects_what_is_not_an_integer_at_least_0(value, error):
    with pytest.raises(error, match="query_split"):
        Runtime(query_split=value)


def test_query_split_0_walks_predecessor_rows_by_id(backend):
    """0 is the behaviour before coherent blocks: predecessor-mode rows in id order."""
    ids = np.random.default_rng(8).permutation(backend.n)
    tree = CoverTree(Runtime(metric="residual_correlation", query_split=0,
                             query_brute=0)).fit(backend)
    order = tree._walk_order(ids, backend.coords[ids], True)
    np.testing.assert_array_equal(ids[order], np.arange(backend.n))
    split = CoverTree(Runtime(metric="residual_correlation", query_brute=0)).fit(backend)
    order = split._walk_order(ids, backend.coords[ids], True)
    walked = ids[order]
    assert not np.array_equal(walked, np.arange(backend.n))
    # Reordered only within runs of consecutive ids: no row comes more than a run late.
    assert np.abs(walked - np.arange(backend.n)).max() < backend.n // 8
