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

from dataclasses import dataclass

import numpy as np
from numba import njit

FLOOR_LEVEL = -64


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


def children_csr(parents: np.ndarray, levels: np.ndarray, members: np.ndarray):
    """CSR children of the nodes in ``members`` (ids whose parent is set).

    Children are ordered by descending level, then id, so traversals meet coarse
    nodes first. Returns (child_ptr (n + 1,), child_idx) int64.
    """
    n = parents.shape[0]
    kids = members[parents[members] >= 0]
    order = np.lexsort((kids, -levels[kids], parents[kids]))
    kids = kids[order]
    counts = np.bincount(parents[kids], minlength=n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, kids.astype(np.int64)


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
