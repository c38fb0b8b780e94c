"""The breadth-first layout the pointwise walks use (see layout_kernels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout_kernels import bfs_layout


@dataclass(frozen=True, eq=False)
class Layout:
    """Per-position arrays, position 0 being the root.

    order: (m,) dataset id at each position; child_start, child_count: (m,) children of
    a position are positions child_start .. child_start + child_count - 1; levels,
    radii, parent_dist, min_id_below: the tree's arrays in position order; data: the
    metric's per-point data gathered in position order.
    """

    order: np.ndarray
    child_start: np.ndarray
    child_count: np.ndarray
    levels: np.ndarray
    radii: np.ndarray
    parent_dist: np.ndarray
    min_id_below: np.ndarray
    data: object


def make_layout(metric, root, child_ptr, child_idx, n_nodes, levels, radii, parent_dist,
                min_id_below) -> Layout:
    """Lay out the n_nodes nodes reachable from root through the CSR children."""
    order, start, count = bfs_layout(root, child_ptr, child_idx, n_nodes)
    layout = Layout(order=order, child_start=start, child_count=count, levels=levels[order],
                    radii=radii[order], parent_dist=parent_dist[order],
                    min_id_below=min_id_below[order], data=metric.gather(order))
    for arr in (order, start, count, layout.levels, layout.radii, layout.parent_dist,
                layout.min_id_below, layout.data):
        arr.setflags(write=False)
    return layout
