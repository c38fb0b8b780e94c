"""Runtime: the frozen settings a tree is built and queried with."""

from __future__ import annotations

from dataclasses import dataclass

from ._validation import as_positive_int

METRICS = ("euclidean", "residual_correlation")
BATCH_ORDERS = ("natural", "random", "hilbert")
STRATEGIES = ("pointwise", "blocked")


@dataclass(frozen=True)
class Runtime:
    """Settings for building and querying a cover tree.

    metric:      "euclidean" (fit on an (n, d) array) or "residual_correlation"
                 (fit on a ``ResidualBackend``)
    batch_size:  largest insertion batch; batches grow 1, 2, 4, ... up to it (prefix doubling)
    batch_order: order in which points enter the tree: "natural", "random" (seeded) or "hilbert"
    seed:        seed of the random batch order and of the independent-set priorities
    strategy:    traversal strategy, None for the metric's default: "pointwise" walks the tree
                 one point at a time with per-pair distances, "blocked" walks a block of points
                 together and evaluates their joint frontier as one tile (GEMM for residual)
    query_block: rows per tile in the blocked strategy
    """

    metric: str = "euclidean"
    batch_size: int = 512
    batch_order: str = "hilbert"
    seed: int = 42
    strategy: str | None = None
    query_block: int = 256

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {', '.join(METRICS)}")
        if self.batch_order not in BATCH_ORDERS:
            raise ValueError(
                f"unknown batch_order {self.batch_order!r}; expected one of {', '.join(BATCH_ORDERS)}"
            )
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise ValueError(
                f"unknown strategy {self.strategy!r}; expected None or one of {', '.join(STRATEGIES)}"
            )
        as_positive_int(self.batch_size, "batch_size")
        as_positive_int(self.query_block, "query_block")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an integer, got {self.seed!r}")
