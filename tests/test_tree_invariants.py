"""Covering, separation and subtree-radius invariants (docs/design.md, "Tree invariants") on every fixture.

Euclidean: the build, the queries and ``tree.distance_matrix`` all evaluate distances with the
same difference-form kernel, so a distance is bitwise the same wherever it is computed and the
invariants are checked with no tolerance (rtol=0; ``covertreex.invariants`` adds 1e-12 absolute
to covering and radius only).

Residual: two float64 evaluations of one residual distance differ by up to
``residual_pair_tolerance`` (derived in conftest.py from the cancellation in k - V.V). Every
invariant is checked with the end of that interval that favours it: covering and radius with
distances lowered by the tolerance, separation with distances raised by it. Anything the tree got
wrong by more than float noise still fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from covertreex import reference as ref
from covertreex.invariants import check_invariants

from conftest import (
    EUCLIDEAN,
    EUCLIDEAN_MAKERS,
    RESIDUAL,
    RESIDUAL_MAKERS,
    RESIDUAL_VARIANTS,
    SMALL_EUCLIDEAN_MAKERS,
    SMALL_RESIDUAL_MAKERS,
    TRAVERSALS,
    fit,
    fitted,
    gaussian,
    rbf_backend,
    residual_data,
    residual_pair_tolerance,
)

SEPARATION = "separation violated"


def _lookup(matrix):
    """distance_matrix_fn serving entries of a precomputed (n, n) matrix.

    The checker asks for one row per inner node; one tile per tree instead of hundreds of small
    ones keeps the fixture-wide sweep cheap. Entries are the same tree.distance_matrix values.
    """
    return lambda rows, cols: matrix[np.ix_(np.asarray(rows), np.asarray(cols))]


def euclidean_problems(tree):
    ids = np.arange(tree.arrays.n)
    return check_invariants(tree.arrays, _lookup(tree.distance_matrix(ids, ids)), 0.0)


def residual_problems(tree, backend):
    ids = np.arange(tree.arrays.n)
    exact = tree.distance_matrix(ids, ids)
    tol = residual_pair_tolerance(backend, ids, ids)
    lowered = _lookup(np.maximum(exact - tol, 0.0))
    raised = _lookup(exact + tol)
    problems = [p for p in check_invariants(tree.arrays, lowered, 0.0) if not p.startswith(SEPARATION)]
    problems += [p for p in check_invariants(tree.arrays, raised, 0.0) if p.startswith(SEPARATION)]
    return problems


def assert_no_problems(problems):
    assert not problems, "cover tree invariants violated:\n- " + "\n- ".join(problems)


@pytest.mark.parametrize("name", sorted(EUCLIDEAN_MAKERS))
def test_euclidean_invariants(name, traversal, batch_order):
    assert_no_problems(euclidean_problems(fitted(EUCLIDEAN, name, traversal, batch_order)))


@pytest.mark.parametrize("name", sorted(RESIDUAL_MAKERS))
def test_residual_invariants(name, phases_variant, batch_order):
    tree = fitted(RESIDUAL, name, phases_variant, batch_order)
    assert_no_problems(residual_problems(tree, residual_data(name)))


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("name", sorted(SMALL_EUCLIDEAN_MAKERS))
def test_euclidean_invariants_small_batches(name, batch_size, traversal, batch_order):
    assert_no_problems(euclidean_problems(fitted(EUCLIDEAN, name, traversal, batch_order, batch_size)))


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("name", sorted(SMALL_RESIDUAL_MAKERS))
def test_residual_invariants_small_batches(name, batch_size, phases_variant, batch_order):
    tree = fitted(RESIDUAL, name, phases_variant, batch_order, batch_size)
    assert_no_problems(residual_problems(tree, residual_data(name)))


def test_euclidean_invariants_n5000(traversal):
    # A 5000 x 5000 matrix would take 200 MB, and thousands of small tree.distance_matrix calls
    # are slow, so the checker gets the reference's numpy distances: the same coordinate-
    # difference sums in the same order, hence bitwise the tree's distances (spot-checked here,
    # and implied by the bitwise-equal distances of the Euclidean exactness tests).
    points = gaussian(5000, 3, seed=5000)
    tree = fit(points, traversal)
    some = np.arange(0, 5000, 37)
    np.testing.assert_array_equal(tree.distance_matrix(some, some), ref.euclidean_distances(points[some], points[some]))
    problems = check_invariants(tree.arrays, lambda r, c: ref.euclidean_distances(points[r], points[c]), 0.0)
    assert_no_problems(problems)


def test_pointwise_scan_separation_regression():
    # Found by test_euclidean_invariants (gauss-d1, pointwise, natural) and shrunk by deleting
    # points. Natural order inserts point 8 (1.272) alone in the last batch; node 4 (1.352,
    # level -3) is 0.08 <= 2**-3 from it, so point 8 must go to level -4 or below. The blocked
    # scan does so; the pointwise scan pruned node 6's subtree (which holds node 4) too early.
    x = np.array([1.053, -2.553, -0.138, 1.014, 1.352, 0.654, 1.497, -0.58, 1.272])[:, None]
    for traversal in ("blocked", "pointwise"):
        tree = fit(x, traversal, batch_order="natural")
        assert_no_problems(euclidean_problems(tree))
        assert tree.arrays.levels[8] <= -4, traversal


def test_levels_respect_parents_and_root_is_unique(traversal):
    # Structural facts the query pruning relies on, stated directly rather than only through the
    # checker's messages.
    tree = fitted(EUCLIDEAN, "multiscale", traversal)
    a = tree.arrays
    n = a.levels.shape[0]
    assert np.flatnonzero(a.parents == -1).tolist() == [a.root]
    child = np.flatnonzero(a.parents >= 0)
    assert np.all(a.levels[child] < a.levels[a.parents[child]])
    assert np.all(a.levels >= a.floor_level)
    assert a.child_ptr.shape == (n + 1,) and a.child_idx.shape == (n - 1,)
    assert sorted(a.child_idx.tolist()) == sorted(child.tolist())
    assert a.min_id_below[a.root] == 0


@pytest.mark.parametrize(
    "metric, variant",
    [(EUCLIDEAN, s) for s in TRAVERSALS] + [(RESIDUAL, v) for v in RESIDUAL_VARIANTS],
)
def test_parent_dist_is_the_distance_to_the_parent(metric, variant, batch_order):
    # Walks prune a child g with |d(q, c) - parent_dist[g]| - radius[g] without evaluating
    # d(q, g), a valid bound only if parent_dist[g] really is d(g, parent(g)).
    name = "duplicates"
    tree = fitted(metric, name, variant, batch_order)
    a = tree.arrays
    child = np.flatnonzero(a.parents >= 0)
    ids = np.arange(a.n)
    want = tree.distance_matrix(ids, ids)[child, a.parents[child]]
    got = np.asarray(a.parent_dist)[child]
    if metric == EUCLIDEAN:
        np.testing.assert_array_equal(got, want)
    else:
        tol = residual_pair_tolerance(residual_data(name), ids, ids)[child, a.parents[child]]
        assert np.all(np.abs(got - want) <= tol)
    assert a.parent_dist[a.root] == 0.0


def test_residual_levels_start_at_zero_or_below(phases_variant):
    # Residual distances are at most 1, so the root sits at level 0 or below (docs/design.md, "Float64 error rule").
    tree = fitted(RESIDUAL, "rbf-d3", phases_variant)
    assert tree.arrays.levels.max() <= 0
    assert tree.arrays.levels[tree.arrays.root] == tree.arrays.levels.max()
    assert np.all(tree.arrays.radii <= 1.0 + 1e-12)


def test_duplicates_sit_at_the_floor_level(traversal):
    # Exact copies cannot be separated at any level: all but one copy of each point must sit at
    # floor_level, the only level exempt from separation.
    points = np.repeat(gaussian(5, 2, seed=3), 4, axis=0)
    tree = fit(points, traversal)
    a = tree.arrays
    assert np.sum(a.levels == a.floor_level) == 5 * 3
    assert_no_problems(euclidean_problems(tree))


def test_residual_check_still_catches_real_violations():
    # The residual check loosens every bound by float noise; make sure that does not let real
    # violations through: a radius halved and levels raised far beyond noise must be reported.
    backend = rbf_backend(gaussian(200, 3, seed=1), 30)
    tree = fit(backend)
    a = tree.arrays
    assert_no_problems(residual_problems(tree, backend))

    radii = np.array(a.radii)
    radii[int(np.argmax(radii))] *= 0.5
    problems = residual_problems(_Shim(dataclasses.replace(a, radii=radii), tree.distance_matrix), backend)
    assert any(p.startswith("subtree radius") for p in problems), problems

    # Every non-root node one level below the root: they would all have to be > 2**(top - 1) apart.
    levels = np.where(np.arange(a.n) == a.root, a.levels[a.root], a.levels[a.root] - 1)
    problems = residual_problems(_Shim(dataclasses.replace(a, levels=levels), tree.distance_matrix), backend)
    assert any(p.startswith(SEPARATION) for p in problems), problems


class _Shim:
    """A tree-like object pairing doctored arrays with a real tree's distance function."""

    def __init__(self, arrays, distance_matrix):
        self.arrays = arrays
        self.distance_matrix = distance_matrix
