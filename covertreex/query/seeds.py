"""Seed candidates of the blocked kNN walk: each row's nearest admissible points in coordinate
space, found with scipy's k-d tree.

A blocked walk prunes a node when its lower bound exceeds the row's current k-th distance.
With an empty heap that distance is infinite until k candidates have been evaluated, and at
the first levels it is far above the final one, so the walk carries wide frontiers down the
tree. Rows whose heaps start from the exact distances to their nearest points in coordinate
space prune with a nearly final k-th distance from the root on (docs/design.md, "Queries").
The candidates only shorten the walk: the walk still visits every node that could hold a
nearer point, so results are exact whatever the candidates are.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


# Rows draw seeds from prefixes of ids whose lengths grow by this factor: a row then searches
# at least 1 / PREFIX_GROWTH of the ids it may take, and O(log n) k-d trees serve all rows.
PREFIX_GROWTH = 2 ** 0.25


def prefix_lengths(limit, n: int) -> np.ndarray:
    """(q,) int64: the ids [0, P) that a row with ids below ``limit`` (q,) int64 draws seeds
    from: n when limit is n, else the largest floor(PREFIX_GROWTH ** j) <= limit, so that
    rows of close limits share a k-d tree."""
    steps = np.unique(np.floor(PREFIX_GROWTH ** np.arange(
        int(np.log(max(n, 2)) / np.log(PREFIX_GROWTH)) + 2)).astype(np.int64))
    lengths = np.concatenate(([0], steps[steps < n], [n]))
    limit = np.minimum(np.asarray(limit, dtype=np.int64), n)
    return lengths[np.searchsorted(lengths, limit, side="right") - 1]


def seed_candidates(coords, qcoords, limit, exclude, s: int, workers: int) -> np.ndarray:
    """(q, s) int64: for row a, up to s ids j < limit[a], j != exclude[a], nearest to
    qcoords[a] among the ids below ``prefix_lengths(limit)[a]`` by Euclidean distance over
    coords, padded with -1.

    coords: (n, d) float64 of the tree's points; qcoords: (q, d) float64 of the rows;
    limit, exclude: (q,) int64 as in a ``Rows``; workers: threads of the k-d tree queries.
    """
    n = coords.shape[0]
    q = limit.shape[0]
    out = np.full((q, s), -1, dtype=np.int64)
    if s == 0 or q == 0:
        return out
    prefix = prefix_lengths(limit, n)
    for size in np.unique(prefix):
        if size == 0:
            continue
        members = np.flatnonzero(prefix == size)
        take = min(s + 1, int(size))
        if take == size:  # the whole prefix: no search needed
            found = np.broadcast_to(np.arange(size, dtype=np.int64), (members.size, take))
        else:
            _, found = cKDTree(coords[:size]).query(qcoords[members], k=take, workers=workers)
            found = found.reshape(members.size, take).astype(np.int64)
        keep = found != exclude[members, None]
        # Each row keeps its first s ids other than its own, in order of distance.
        rank = np.cumsum(keep, axis=1) - 1
        rows, cols = np.nonzero(keep & (rank < s))
        out[members[rows], rank[rows, cols]] = found[rows, cols]
    return out
