"""Frozen compressed-cover-tree arrays and their derived indexes.

Node v is dataset point v: every point is stored once, at its top level.
Conventions (checked by ``covertreex.invariants``):

- covering:   d(v, parent(v)) <= 2**(level(v) + 1), and level(v) < level(parent(v));
- separation: for every level l > floor_level, nodes with level >= l are pairwise more than
  2**l apart; the root belongs to every level;
- radius:     radii[v] >= d(v, w) for every descendant w.

Nodes at ``floor_level`` are exact or near duplicates (distance below 2**(floor_level + 1))
and are exempt from separation.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
from numba import njit

FLOOR_LEVEL = -64

# The tree as Numba kernels receive it: one struct instead of seven loose arrays (scipy's
# cKDTree hands its query kernels one ``ckdtree *`` in the same way). Fields as in TreeArrays;
# during a build they are the growing arrays of the nodes placed so far.
TreeView = namedtuple("TreeView", ["root", "levels", "radii", "parent_dist", "min_id_below",
                                   "child_ptr", "child_idx"])


@dataclass(frozen=True, eq=False)
class TreeArrays:
    """levels, parents, min_id_below: (n,) int64; radii, parent_dist: (n,) float64
    (parent_dist[v] = d(v, parent(v)), 0 at the root);
    child_ptr: (n + 1,) int64 and child_idx: (n - 1,) int64, children sorted by
    descending level then id; root: the root's id."""

    levels: np.ndarray
    parents: np.ndarray
    radii: np.ndarray
    parent_dist: np.ndarray
    child_ptr: np.ndarray
    child_idx: np.ndarray
    min_id_below: np.ndarray
    root: int
    floor_level: int = FLOOR_LEVEL

    @property
    def n(self) -> int:
        return self.levels.shape[0]

    def view(self) -> TreeView:
        """The arrays as the one struct kernels take."""
        return TreeView(self.root, self.levels, self.radii, self.parent_dist, self.min_id_below,
                        self.child_ptr, self.child_idx)


def children_csr(parents: np.ndarray, levels: np.ndarray, members: np.ndarray):
    """CSR children of the nodes in ``members`` (ids whose parent is set).

    Children are ordered by descending level, then id, so traversals meet coarse
    nodes first. Returns (child_ptr (n + 1,), child_idx) int64.
    """
    is_member = np.zeros(parents.shape[0], dtype=np.bool_)
    is_member[members] = True
    return _children_csr(parents, levels, is_member)


@njit(nogil=True, cache=True)
def _children_csr(parents, levels, is_member):
    # Two stable counting sorts of the ids in ascending order, by descending level and then
    # by parent: linear time, where a comparison sort of every node ran once per batch.
    n = parents.shape[0]
    count = 0
    top = bottom = 0
    for v in range(n):
        if is_member[v] and parents[v] >= 0:
            top = levels[v] if count == 0 else max(top, levels[v])
            bottom = levels[v] if count == 0 else min(bottom, levels[v])
            count += 1
    level_ptr = np.zeros(top - bottom + 2, dtype=np.int64)
    for v in range(n):
        if is_member[v] and parents[v] >= 0:
            level_ptr[top - levels[v] + 1] += 1
    level_ptr = np.cumsum(level_ptr)
    by_level = np.empty(count, dtype=np.int64)
    for v in range(n):
        if is_member[v] and parents[v] >= 0:
            by_level[level_ptr[top - levels[v]]] = v
            level_ptr[top - levels[v]] += 1
    ptr = np.zeros(n + 1, dtype=np.int64)
    for v in by_level:
        ptr[parents[v] + 1] += 1
    ptr = np.cumsum(ptr)
    fill = ptr[:-1].copy()
    idx = np.empty(count, dtype=np.int64)
    for v in by_level:
        idx[fill[parents[v]]] = v
        fill[parents[v]] += 1
    return ptr, idx


@njit(nogil=True, cache=True)
def _min_id_below(parents, levels):
    n = parents.shape[0]
    out = np.arange(n)
    # Children have strictly lower levels than their parents, so ascending level is a
    # valid bottom-up order.
    for v in np.argsort(levels, kind="mergesort"):
        p = parents[v]
        if p >= 0 and out[v] < out[p]:
            out[p] = out[v]
    return out


def finalize(levels: np.ndarray, parents: np.ndarray, radii: np.ndarray, parent_dist: np.ndarray,
             root: int) -> TreeArrays:
    """Freeze build arrays into ``TreeArrays``; the root's level becomes one above its
    highest child (0 for a lone root)."""
    levels = levels.copy()
    n = levels.shape[0]
    top_child = levels[parents == root].max() if n > 1 else -1
    levels[root] = top_child + 1
    ptr, idx = children_csr(parents, levels, np.arange(n))
    arrays = TreeArrays(
        levels=levels,
        parents=parents.copy(),
        radii=radii.copy(),
        parent_dist=parent_dist.copy(),
        child_ptr=ptr,
        child_idx=idx,
        min_id_below=_min_id_below(parents, levels),
        root=int(root),
    )
    for name in ("levels", "parents", "radii", "parent_dist", "child_ptr", "child_idx", "min_id_below"):
        getattr(arrays, name).setflags(write=False)
    return arrays
