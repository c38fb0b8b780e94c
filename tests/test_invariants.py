"""check_invariants on hand-built trees: valid trees pass, each kind of violation is named."""

import dataclasses

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from covertreex.invariants import assert_invariants, check_invariants
from covertreex.metrics.residual import build_residual_backend
from covertreex.reference import residual_distances


@dataclasses.dataclass(frozen=True)
class Arrays:
    """Stand-in with the attribute names of covertreex.tree.TreeArrays (docs/design.md, "Tree invariants")."""

    levels: np.ndarray
    parents: np.ndarray
    radii: np.ndarray
    root: int
    child_ptr: np.ndarray
    child_idx: np.ndarray
    min_id_below: np.ndarray
    floor_level: int


def arrays_from(parents, levels, dmat, floor_level):
    """Consistent CSR, radii and min_id_below for the given parents and levels."""
    parents = np.asarray(parents, dtype=np.int64)
    n = parents.shape[0]
    root = int(np.flatnonzero(parents == -1)[0])
    kids = np.flatnonzero(parents >= 0)
    kids = kids[np.argsort(parents[kids], kind="stable")]
    child_ptr = np.concatenate([[0], np.cumsum(np.bincount(parents[kids], minlength=n))])
    radii = np.zeros(n)
    min_id = np.arange(n)
    for v in range(n):
        u = parents[v]
        while u >= 0:  # every ancestor u of v
            radii[u] = max(radii[u], dmat[u, v])
            min_id[u] = min(min_id[u], v)
            u = parents[u]
    levels = np.asarray(levels, dtype=np.int64)
    return Arrays(levels, parents, radii, root, child_ptr, kids, min_id, floor_level)


def greedy_cover_tree(dmat):
    """A valid compressed cover tree by nested greedy nets (root 0, covering 2**(level + 1))."""
    n = dmat.shape[0]
    positive = dmat[dmat > 0]
    top = int(np.ceil(np.log2(dmat.max()))) if positive.size else 0
    floor_level = int(np.floor(np.log2(positive.min()))) - 1 if positive.size else top - 1
    levels = np.full(n, floor_level)
    levels[0] = top
    parents = np.full(n, -1)
    in_net = np.zeros(n, dtype=bool)
    in_net[0] = True
    for level in range(top - 1, floor_level - 1, -1):
        # Every point left is within 2**(level + 1) of a node above this level, by the greedy net
        # one level up (or, at the top, because 2**top >= every distance).
        upper = np.flatnonzero(in_net)
        for p in np.flatnonzero(~in_net):
            if level == floor_level or dmat[p, in_net].min() > 2.0**level:
                levels[p] = level
                parents[p] = upper[np.argmin(dmat[p, upper])]
                in_net[p] = True
    return arrays_from(parents, levels, dmat, floor_level)


def euclidean_case(seed, n=60, d=2):
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, d))
    points[[7, 19, 33]] = points[4]  # exact duplicates end at the floor level
    dmat = cdist(points, points)
    return greedy_cover_tree(dmat), dmat, (lambda rows, cols: dmat[np.ix_(rows, cols)])


def replace(arrays, **changes):
    return dataclasses.replace(
        arrays, **{k: np.asarray(v) if isinstance(v, list) else v for k, v in changes.items()}
    )


def assert_one_kind(arrays, fn, phrase):
    problems = check_invariants(arrays, fn)
    assert any(phrase in p for p in problems), problems
    return problems


@pytest.mark.parametrize("seed, d", [(0, 1), (1, 2), (2, 5)])
def test_greedy_euclidean_trees_pass(seed, d):
    arrays, _, fn = euclidean_case(seed, d=d)
    assert check_invariants(arrays, fn) == []
    assert (arrays.levels[[7, 19, 33]] == arrays.floor_level).sum() >= 2


def test_residual_tree_passes():
    rng = np.random.default_rng(3)
    coords = rng.standard_normal((80, 3))
    coords[[10, 11]] = coords[12]
    backend = build_residual_backend(coords, inducing_count=20)
    ids = np.arange(80)
    arrays = greedy_cover_tree(residual_distances(backend, ids, ids))
    assert arrays.levels.max() <= 0
    assert check_invariants(arrays, lambda r, c: residual_distances(backend, r, c)) == []


def test_single_point_tree_passes():
    arrays = Arrays(np.array([0]), np.array([-1]), np.zeros(1), 0, np.array([0, 0]),
                    np.zeros(0, dtype=np.int64), np.array([0]), -5)
    assert check_invariants(arrays, lambda r, c: np.zeros((len(r), len(c)))) == []


def test_hand_built_tree_on_a_line():
    # 0 is the root; 1 hangs under 0; 2 and 3 under 1. Points on a line at 0, 1.5, 1.9, 0.9.
    x = np.array([[0.0], [1.5], [1.9], [0.9]])
    dmat = cdist(x, x)
    fn = lambda r, c: dmat[np.ix_(r, c)]  # noqa: E731
    good = Arrays(levels=np.array([2, 0, -2, -1]), parents=np.array([-1, 0, 1, 1]),
                  radii=np.array([1.9, 0.6, 0.0, 0.0]), root=0, child_ptr=np.array([0, 1, 3, 3, 3]),
                  child_idx=np.array([1, 2, 3]), min_id_below=np.array([0, 1, 2, 3]), floor_level=-3)
    assert check_invariants(good, fn) == []
    # Level 1 for node 1: the root and node 1 are 1.5 < 2**1 apart.
    problems = check_invariants(replace(good, levels=[2, 1, -2, -1]), fn)
    assert problems == [
        "separation violated at level 1: 1 pair(s) within 2**1 = 2, closest nodes 0 and 1 "
        "(levels 2, 1) at distance 1.5"
    ]
    # Node 2 at level -3 = floor_level is exempt from separation but must still be covered:
    # d(2, 1) = 0.4 > 2**(-3 + 1).
    problems = check_invariants(replace(good, levels=[2, 0, -3, -1]), fn)
    assert len(problems) == 1 and problems[0].startswith("covering violated"), problems


def test_covering_violation():
    arrays, dmat, fn = euclidean_case(4)
    leaves = np.flatnonzero(np.diff(arrays.child_ptr) == 0)
    # A leaf re-attached to a far node above it (never its own descendant, since it is a leaf).
    v = next(v for v in leaves if arrays.levels[v] < arrays.levels[arrays.root] - 1)
    far = [w for w in np.argsort(-dmat[v]) if arrays.levels[w] > arrays.levels[v]
           and dmat[v, w] > 2.0 ** (arrays.levels[v] + 1)]
    parents = arrays.parents.copy()
    parents[v] = far[0]
    broken = arrays_from(parents, arrays.levels, dmat, arrays.floor_level)
    problems = check_invariants(broken, fn)
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"covering violated: d(v, parent) > 2**(level[v] + 1): 1 node(s), e.g. node {v} "
        f"(parent {far[0]}, level {arrays.levels[v]}, distance"
    ), problems


def test_child_level_not_below_parent():
    arrays, _, fn = euclidean_case(5)
    v = np.flatnonzero(arrays.parents >= 0)[0]
    levels = arrays.levels.copy()
    levels[v] = levels[arrays.parents[v]]
    assert_one_kind(replace(arrays, levels=levels), fn, "child level not below its parent's level")


def test_separation_violation_below_the_parent_level():
    arrays, _, fn = euclidean_case(6)
    leaves = np.flatnonzero(np.diff(arrays.child_ptr) == 0)
    gap = arrays.levels[arrays.parents[leaves]] - arrays.levels[leaves]
    room = arrays.levels[arrays.parents[leaves]] - 1 > arrays.floor_level
    v = leaves[np.flatnonzero((gap >= 2) & room)[0]]
    levels = arrays.levels.copy()
    levels[v] = levels[arrays.parents[v]] - 1  # now within 2**level of its parent at that level
    problems = check_invariants(replace(arrays, levels=levels), fn)
    assert all(p.startswith("separation violated") for p in problems), problems
    assert any(p.startswith(f"separation violated at level {levels[v]}:") for p in problems), problems


def test_radius_violation():
    arrays, _, fn = euclidean_case(7)
    radii = arrays.radii.copy()
    u = int(np.argmax(radii))
    radii[u] *= 1 - 1e-6
    problems = check_invariants(replace(arrays, radii=radii), fn)
    assert len(problems) == 1, problems
    assert problems[0].startswith("subtree radius below the farthest descendant"), problems
    radii[u] = np.nan
    assert_one_kind(replace(arrays, radii=radii), fn, "radii negative, NaN or infinite")


def test_radius_tolerance_is_relative():
    arrays, _, fn = euclidean_case(7)
    radii = arrays.radii * (1 - 1e-11)
    assert check_invariants(replace(arrays, radii=radii), fn) == []
    assert check_invariants(replace(arrays, radii=radii), fn, rtol=0.0) != []


def test_csr_inconsistent_with_parents():
    arrays, _, fn = euclidean_case(8)
    child_idx = arrays.child_idx.copy()
    owners = np.repeat(np.arange(len(arrays.levels)), np.diff(arrays.child_ptr))
    a, b = 0, int(np.flatnonzero(owners != owners[0])[0])
    child_idx[[a, b]] = child_idx[[b, a]]
    assert_one_kind(replace(arrays, child_idx=child_idx), fn, "CSR children disagree with parents")
    child_idx[b] = child_idx[a]  # listed twice, the other child never
    assert_one_kind(replace(arrays, child_idx=child_idx), fn, "not listed exactly once")
    child_ptr = arrays.child_ptr.copy()
    child_ptr[1], child_ptr[2] = child_ptr[2] + 1, child_ptr[1]
    assert_one_kind(replace(arrays, child_ptr=child_ptr), fn, "child_ptr must rise")


def test_min_id_below_mismatch():
    arrays, _, fn = euclidean_case(9)
    min_id = arrays.min_id_below.copy()
    min_id[arrays.root] = 1
    problems = check_invariants(replace(arrays, min_id_below=min_id), fn)
    assert problems == [f"min_id_below differs from the smallest id in the subtree: 1 node(s), e.g. node "
                        f"{arrays.root} (min_id_below 1, expected 0)"]


def test_root_problems():
    arrays, _, fn = euclidean_case(10)
    parents = arrays.parents.copy()
    parents[5] = -1
    assert_one_kind(replace(arrays, parents=parents), fn, "expected exactly one root")
    assert_one_kind(replace(arrays, root=3), fn, "expected exactly one root")
    problems = check_invariants(replace(arrays, root=len(arrays.levels)), fn)
    assert problems == [f"root = {len(arrays.levels)} is outside [0, {len(arrays.levels)})"]


def test_unreachable_nodes_and_bad_parents():
    arrays, _, fn = euclidean_case(11)
    leaves = np.flatnonzero(np.diff(arrays.child_ptr) == 0)
    parents = arrays.parents.copy()
    parents[leaves[0]], parents[leaves[1]] = leaves[1], leaves[0]  # a two-node cycle
    problems = assert_one_kind(replace(arrays, parents=parents), fn, "not reachable from the root")
    assert f"node {min(leaves[:2])}" in next(p for p in problems if "not reachable" in p)
    parents = arrays.parents.copy()
    parents[leaves[0]] = len(parents)
    assert_one_kind(replace(arrays, parents=parents), fn, "parents out of [-1, n)")


def test_levels_below_floor():
    arrays, _, fn = euclidean_case(12)
    assert_one_kind(replace(arrays, floor_level=arrays.floor_level + 1), fn, "levels below floor_level")


def test_malformed_arrays_stop_early():
    arrays, _, fn = euclidean_case(13)
    assert check_invariants(replace(arrays, child_idx=arrays.child_idx[:-1]), fn) == [
        f"child_idx has shape ({len(arrays.levels) - 2},), expected ({len(arrays.levels) - 1},) "
        f"for n = {len(arrays.levels)}"
    ]
    assert "must hold integers" in check_invariants(replace(arrays, parents=arrays.parents * 1.0), fn)[0]
    assert "lacks a TreeArrays field" in check_invariants(object(), fn)[0]


def test_assert_invariants_lists_every_violation():
    arrays, _, fn = euclidean_case(14)
    assert_invariants(arrays, fn)
    radii = arrays.radii * 0.5
    min_id = arrays.min_id_below + 1
    with pytest.raises(AssertionError, match=r"(?s)invariants violated:\n- min_id_below.*\n- subtree radius"):
        assert_invariants(replace(arrays, radii=radii, min_id_below=min_id), fn)


def test_bad_arguments():
    arrays, _, fn = euclidean_case(15)
    with pytest.raises(ValueError, match="rtol must be a number in"):
        check_invariants(arrays, fn, rtol=-1e-9)
    with pytest.raises(ValueError, match="distance_matrix_fn returned shape"):
        check_invariants(arrays, lambda r, c: np.zeros((len(r), 1)))
