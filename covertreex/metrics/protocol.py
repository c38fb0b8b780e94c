"""What a metric supplies to the tree: the ``Metric`` protocol and its Numba kernels.

A metric owns its per-point data and two Numba kernels; the engine compiles the tree's
traversals around them (covertreex.engine.specialise), so the metrics import neither the
insertion nor the query code. docs/design.md, "Metric protocol", explains the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
from numba import njit

# The ``active`` mask of a tile kernel call that wants every pair.
ALL_PAIRS = np.zeros((0, 0), dtype=np.bool_)


@njit(nogil=True, inline="always")
def same_value(d):
    """The key of a metric whose pair kernel is its own key: distances unchanged."""
    return d


@dataclass(frozen=True)
class MetricKernels:
    """A metric's Numba kernels, named by ``tag`` (which also names the compiled copies of
    the traversals and keeps their on-disk caches apart).

    pair(qdata, i, tdata, j) -> float: the distance between query row i and tree point j.
    tile_kernel(qdata, tdata, rows, cols, active, row_thr, col_thr, workspace, counters)
        -> (len(rows), len(cols)) float64: distances of the pairs flagged in active (b, f)
        (all pairs when ``active`` is ALL_PAIRS); a pair whose distance exceeds
        row_thr[a] + col_thr[c] may carry any value above that sum (only pruning reads it);
        workspace: the metric's scratch for one thread; counters: telemetry slots
        (covertreex.telemetry; empty for none).
    pair_key, key_to_distance, distance_to_key: a cheaper key for scans of whole subtrees
        (pynndescent's squared distances): pair_key is monotone in the distance,
        key_to_distance(pair_key(...)) equals pair(...) bit for bit, and distance_to_key(d)
        is at least the key of every pair whose distance is <= d. Default: the distance.
    """

    tag: str
    pair: Callable
    tile_kernel: Callable
    pair_key: Callable | None = None
    key_to_distance: Callable = same_value
    distance_to_key: Callable = same_value

    def bindings(self) -> dict:
        """The names the traversal templates call, bound to this metric's kernels."""
        return {"pair": self.pair, "tile_kernel": self.tile_kernel,
                "pair_key": self.pair_key or self.pair, "key_to_distance": self.key_to_distance,
                "distance_to_key": self.distance_to_key}


@runtime_checkable
class Metric(Protocol):
    """A fitted metric over n points, as the tree's build and queries use it.

    data: the tree-side per-point data the kernels read (an array or a namedtuple of
    arrays); prune_slack: an absolute bound on the error of a computed distance, added to
    every pruning test so that rounding never prunes a subtree the exact distances keep.
    A metric that runs the pointwise traversal also has ``gather(ids) -> data``, the
    pair-kernel data of the points ids (m,) in that order, for the layouts.
    """

    name: str
    n: int
    data: Any
    kernels: MetricKernels
    prune_slack: float

    def workspace(self, block: int) -> Any:
        """Scratch for the tile kernel on up to ``block`` rows, owned by one thread."""

    def tile(self, qdata, rows: np.ndarray, cols: np.ndarray, counters=None) -> np.ndarray:
        """(len(rows), len(cols)) float64 distances, from Python (the pre-audit tile loop)."""
