"""The layouts the pointwise walks use (see layout_kernels): breadth-first for walking the
tree and, for kNN queries, a depth-first copy for scanning small subtrees whole."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .layout_kernels import bfs_layout, subtree_ranges

# kNN walks scan a subtree of at most this many nodes as one contiguous run of depth-first
# rows instead of walking it: a walk pays branches and bounds for every node it evaluates, a
# scan only a key comparison. At d=8 a walk prunes little that deep, so scanning evaluates
# more pairs in less time (perf/subtree_scan.py prints both for a range of sizes).
SUBTREE_SCAN_MAX = 128


@dataclass(frozen=True, eq=False)
class SubtreeRuns:
    """Depth-first copy of a layout: the subtree of position c is ranks start[c] ..
    start[c] + size[c] - 1, c itself first; ids (m,) int64 and data (the metric's pair
    data) by rank."""

    start: np.ndarray
    size: np.ndarray
    ids: np.ndarray
    data: object


@dataclass(frozen=True, eq=False)
class Layout:
    """Per-position arrays, position 0 being the root.

    order: (m,) dataset id at each position; child_start, child_count: (m,) children of
    a position are positions child_start .. child_start + child_count - 1; levels, radii,
    min_id_below: the tree's arrays in position order; data: the metric's per-point data
    gathered in position order; runs: the depth-first copy, or None when it was not asked
    for (build scans walk every node).
    """

    order: np.ndarray
    child_start: np.ndarray
    child_count: np.ndarray
    levels: np.ndarray
    radii: np.ndarray
    min_id_below: np.ndarray
    data: object
    runs: SubtreeRuns | None = None


def make_layout(metric, root, child_ptr, child_idx, n_nodes, levels, radii, min_id_below,
                with_runs: bool = False) -> Layout:
    """Lay out the n_nodes nodes reachable from root through the CSR children; with_runs
    adds the depth-first copy."""
    order, start, count = bfs_layout(root, child_ptr, child_idx, n_nodes)
    runs = None
    if with_runs:
        by_rank, sub_start, sub_size = subtree_ranges(start, count)
        ids = order[by_rank]
        runs = SubtreeRuns(start=sub_start, size=sub_size, ids=ids, data=metric.gather(ids))
        _freeze(runs)
    layout = Layout(order=order, child_start=start, child_count=count, levels=levels[order],
                    radii=radii[order], min_id_below=min_id_below[order],
                    data=metric.gather(order), runs=runs)
    _freeze(layout)
    return layout


def _freeze(record) -> None:
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
