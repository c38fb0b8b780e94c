"""The pointwise walks' shortcuts give the answers of the plain walk.

- kNN queries scan small subtrees whole from a depth-first copy (covertreex.engine.layout), comparing
  squared Euclidean distances: every scan size, from none (a pure walk) to every subtree, must
  give the reference's neighbours, in predecessor mode too;
- the depth-first ranks put every subtree in one run;
- children_csr's counting sorts, the pow2 table and the conflict test by comparison equal the
  comparison sort, math.ldexp and level_of_distance they replace.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from covertreex import reference as ref
from covertreex.insert.conflict_kernels import _conflict
from covertreex.engine.frontier_kernels import level_of_distance, pow2
from covertreex.engine.layout_kernels import bfs_layout, subtree_ranges
from covertreex.metrics.euclidean import distance_to_square
from covertreex.tree import FLOOR_LEVEL, children_csr
import covertreex.query.knn as knn_module

from conftest import (
    assert_euclidean_equal,
    assert_predecessor_shape,
    euclidean_data,
    fit,
    fresh_queries,
)

# 0: walk every node; 1: a node of size 1 is a leaf, so also a pure walk; 3: tiny runs;
# 128: the default; 10**9: every child of the root is scanned whole.
SCAN_SIZES = (0, 3, 128, 10**9)


@pytest.mark.parametrize("scan_max", SCAN_SIZES)
@pytest.mark.parametrize("name", ["gauss-d8", "duplicates", "tight-clusters", "multiscale", "grid"])
def test_knn_equals_reference_for_every_scan_size(name, scan_max, monkeypatch):
    monkeypatch.setattr(knn_module, "SUBTREE_SCAN_MAX", scan_max)
    points = euclidean_data(name)
    tree = fit(points, "pointwise")
    queries = fresh_queries(points)
    for k in (1, 8):
        idx, dist = tree.knn(queries, k=k, return_distances=True)
        assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, queries, k))


@pytest.mark.parametrize("scan_max", SCAN_SIZES)
def test_predecessor_mode_for_every_scan_size(scan_max, monkeypatch):
    monkeypatch.setattr(knn_module, "SUBTREE_SCAN_MAX", scan_max)
    points = euclidean_data("duplicates")
    tree = fit(points, "pointwise")
    idx, dist = tree.knn(None, k=5, return_distances=True, predecessor_mode=True)
    assert_predecessor_shape(idx, 5)
    assert_euclidean_equal(idx, dist, *ref.euclidean_knn(points, None, 5, predecessor_mode=True))


def test_a_larger_scan_evaluates_more_pairs_for_the_same_answer(monkeypatch):
    points = euclidean_data("gauss-d8")
    tree = fit(points, "pointwise")
    queries = fresh_queries(points)
    expected = ref.euclidean_knn(points, queries, 8)[0]
    pairs = {}
    for scan_max in (0, 10**9):
        monkeypatch.setattr(knn_module, "SUBTREE_SCAN_MAX", scan_max)
        idx, _, report = tree.knn_report(queries, k=8)
        np.testing.assert_array_equal(idx, expected)
        pairs[scan_max] = report.pairs_evaluated
    # Scanning every subtree whole evaluates each point below the root's children once.
    assert pairs[0] < pairs[10**9] <= len(queries) * points.shape[0]


def _children_lists(child_start, child_count):
    return [list(range(child_start[c], child_start[c] + child_count[c]))
            for c in range(child_count.shape[0])]


@pytest.mark.parametrize("name", ["gauss-d3", "duplicates", "multiscale"])
def test_subtree_ranges_are_preorder_runs(name):
    tree = fit(euclidean_data(name), "pointwise")
    a = tree.arrays
    order, start, count = bfs_layout(a.root, a.child_ptr, a.child_idx, a.n)
    by_rank, sub_start, sub_size = subtree_ranges(start, count)
    kids = _children_lists(start, count)
    # A recursive pre-order walk, the naive definition of the ranks.
    expected, stack = [], [0]
    while stack:
        c = stack.pop()
        expected.append(c)
        stack.extend(reversed(kids[c]))
    np.testing.assert_array_equal(by_rank, expected)
    np.testing.assert_array_equal(by_rank[sub_start], np.arange(a.n))

    def members(c):
        out = [c]
        for g in kids[c]:
            out += members(g)
        return out

    for c in np.random.default_rng(0).integers(0, a.n, 40):
        run = by_rank[sub_start[c]:sub_start[c] + sub_size[c]]
        assert sorted(run) == sorted(members(c))


def _children_csr_by_sorting(parents, levels, members):
    kids = members[parents[members] >= 0]
    kids = kids[np.lexsort((kids, -levels[kids], parents[kids]))]
    ptr = np.zeros(parents.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents[kids], minlength=parents.shape[0]), out=ptr[1:])
    return ptr, kids


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_children_csr_equals_the_comparison_sort(n, seed):
    rng = np.random.default_rng(seed)
    levels = rng.integers(FLOOR_LEVEL, 6, n)
    parents = np.where(rng.random(n) < 0.2, -1, rng.integers(0, n, n))
    members = rng.permutation(n)[:rng.integers(0, n + 1)]
    ptr, idx = children_csr(parents, levels, members)
    ref_ptr, ref_idx = _children_csr_by_sorting(parents, levels, members)
    np.testing.assert_array_equal(ptr, ref_ptr)
    np.testing.assert_array_equal(idx, ref_idx)


@njit
def _pow2_all(levels):
    return np.array([pow2(v) for v in levels])


def test_pow2_table_equals_ldexp():
    levels = np.arange(-1300, 1300)
    # math.ldexp raises past float64's range where the kernel saturates to inf.
    expected = [math.ldexp(1.0, int(v)) if v < 1024 else math.inf for v in levels]
    np.testing.assert_array_equal(_pow2_all(levels), expected)
    assert _pow2_all(np.array([1 << 40]))[0] == math.inf


@njit
def _conflicts(pairwise, level):
    out = np.empty(pairwise.shape, dtype=np.bool_)
    for a in range(pairwise.shape[0]):
        for c in range(pairwise.shape[1]):
            out[a, c] = _conflict(pairwise, a, c, level)
    return out


@njit
def _conflicts_by_level(pairwise, level):
    out = np.empty(pairwise.shape, dtype=np.bool_)
    for a in range(pairwise.shape[0]):
        for c in range(pairwise.shape[1]):
            out[a, c] = level_of_distance(pairwise[a, c]) <= min(level[a], level[c])
    return out


def test_conflict_by_comparison_equals_level_of_distance():
    rng = np.random.default_rng(3)
    # Exact powers of two and their float neighbours, zero, subnormals and ordinary values.
    powers = np.ldexp(1.0, np.arange(-70, 8))
    values = np.concatenate([powers, np.nextafter(powers, 0), np.nextafter(powers, np.inf),
                             [0.0, 5e-324, 1e-310], rng.random(40) * 10])
    pairwise = np.abs(rng.choice(values, (values.shape[0], values.shape[0])))
    level = rng.choice(np.arange(FLOOR_LEVEL, 6), values.shape[0])
    level[:5] = FLOOR_LEVEL
    np.testing.assert_array_equal(_conflicts(pairwise, level), _conflicts_by_level(pairwise, level))


@njit
def _square_bound_holds(s, d):
    return math.sqrt(s) > d or s <= distance_to_square(d)


@settings(max_examples=500, deadline=None)
@given(st.floats(0.0, 1e300, allow_subnormal=True), st.integers(-3, 3))
def test_squared_bound_keeps_every_pair_within_the_distance(d, ulps):
    # s whose square root rounds to within a few ulps of d, on both sides.
    s = d * d
    for _ in range(abs(ulps)):
        s = np.nextafter(s, np.inf if ulps > 0 else 0.0)
    assert _square_bound_holds(s, d)
