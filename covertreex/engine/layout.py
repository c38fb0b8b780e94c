"""The layouts the pointwise walks use (see layout_kernels): breadth-first for walking the
tree and, for kNN queries, a depth-first copy for scanning small subtrees whole."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .layout_kernels import bfs_layout, subtree_ranges

# kNN walks scan a subtree of at most this many nodes as one contiguous run of depth-first
# rows instead of walking it: a walk pays branches and bounds for every node it evaluates, a
# scan only a key comparison. At d=8 a walk prunes little that deep, so scanning evaluates
# more pairs in less time (perf/subtree_scan.py prints both for a range of sizes).
SUBTREE_SCAN_MAX = 128

# A tree laid out for the pointwise kernels, as the one struct they take; read-only arrays.
# Per position (position 0 is the root): order (m,) dataset id; child_start, child_count (m,)
# the children of a position are positions child_start .. child_start + child_count - 1;
# levels, radii, min_id_below: the tree's arrays in position order; data: the metric's
# per-point data gathered in position order. The depth-first copy (empty when not asked
# for; build scans walk every node): the subtree of position c is ranks run_start[c] ..
# run_start[c] + run_size[c] - 1, c itself first, with run_ids (m,) and run_data by rank.
Layout = namedtuple("Layout", ["order", "child_start", "child_count", "levels", "radii",
                               "min_id_below", "data", "run_start", "run_size", "run_ids",
                               "run_data"])


def make_layout(metric, tree, n_nodes: int, with_runs: bool = False) -> Layout:
    """Lay out the n_nodes nodes reachable from the root of ``tree`` (a TreeView) through its
    CSR children; with_runs adds the depth-first copy."""
    order, start, count = bfs_layout(tree.root, tree.child_ptr, tree.child_idx, n_nodes)
    data = metric.gather(order)
    none = np.empty(0, dtype=np.int64)
    run_start, run_size, run_ids, run_data = none, none, none, data
    if with_runs:
        by_rank, run_start, run_size = subtree_ranges(start, count)
        run_ids = order[by_rank]
        run_data = metric.gather(run_ids)
    layout = Layout(order, start, count, tree.levels[order], tree.radii[order],
                    tree.min_id_below[order], data, run_start, run_size, run_ids, run_data)
    for value in layout:
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return layout
