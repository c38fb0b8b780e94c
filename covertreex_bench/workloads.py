"""The named workloads (docs/design.md, "Harness"): one definition, used by the CLI, asv, gates and tests.

| preset     | metric                     | n     | d | inducing | queries          | k  |
|------------|----------------------------|-------|---|----------|------------------|----|
| gold-d3    | residual, RBF(s2=1, l=1)   | 32768 | 3 | 512      | 1024 dataset ids | 50 |
| gold-d8    | residual, RBF(s2=1, l=1)   | 32768 | 8 | 512      | 1024 dataset ids | 8  |
| vecchia-d3 | residual, predecessor mode | 32768 | 3 | 512      | all n            | 50 |
| vecchia-65k | as vecchia-d3             | 65536 | 3 | 512      | all n            | 50 |
| vecchia-131k| as vecchia-d3             |131072 | 3 | 512      | all n            | 50 |
| euclid-32k | euclidean                  | 32768 | 8 | -        | 1024 fresh points| 8  |
| quick      | residual, RBF              | 4096  | 3 | 256      | 256 dataset ids  | 50 |

Data, all from ``numpy.random.default_rng``:

- points:              ``default_rng(seed).standard_normal((n, d))``
- inducing ids:        ``sort(default_rng(seed + 1).choice(n, m, replace=False))``, drawn by
                       ``build_residual_backend`` itself
- query ids:           ``sort(default_rng(seed + 2).choice(n, q, replace=False))``; None when q == n
- Euclidean queries:   ``default_rng(seed + 3).standard_normal((q, d))``

Seed 42, batch size 512.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from covertreex.kernels import RBF, Matern52

EUCLIDEAN = "euclidean"
RESIDUAL = "residual_correlation"
METRICS = (EUCLIDEAN, RESIDUAL)


@dataclass(frozen=True)
class Preset:
    """One named workload.

    metric:           "euclidean" or "residual_correlation" (the ``Runtime.metric`` names)
    n, d:             data set size and dimension
    inducing:         number of inducing points for the residual metric, None for Euclidean
    queries:          number of queries; residual presets query dataset ids and
                      ``queries == n`` means every point; Euclidean presets query fresh points
    k:                neighbours per query
    predecessor_mode: restrict point i to neighbours j < i (Vecchia)
    kernel:           the covariance kernel of the residual metric, None for Euclidean
    reference_every:  ``covertreex bench --check`` runs the float64 brute force on one row
                      block in every this many and scales its time to all rows (residual
                      presets only); 1 runs it on every row
    """

    name: str
    metric: str
    n: int
    d: int
    inducing: int | None
    queries: int
    k: int
    predecessor_mode: bool
    kernel: RBF | Matern52 | None
    seed: int = 42
    batch_size: int = 512
    reference_every: int = 1

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"preset {self.name!r}: metric must be one of {METRICS}, got {self.metric!r}")
        if self.metric == RESIDUAL and (self.inducing is None or self.kernel is None):
            raise ValueError(f"preset {self.name!r}: a residual preset needs inducing and kernel")
        if self.metric == EUCLIDEAN and (self.inducing is not None or self.kernel is not None):
            raise ValueError(f"preset {self.name!r}: a Euclidean preset has no inducing points or kernel")
        if self.queries < 1 or (self.metric == RESIDUAL and self.queries > self.n):
            raise ValueError(
                f"preset {self.name!r}: queries must be >= 1 (and <= n for residual), got {self.queries}"
            )
        if self.predecessor_mode and self.queries != self.n:
            raise ValueError(f"preset {self.name!r}: predecessor mode queries every point (queries == n)")
        every = self.reference_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"preset {self.name!r}: reference_every must be an integer >= 1, got {every!r}")
        if every > 1 and not self.is_residual:
            # The Euclidean brute force takes every row in one call (fresh points have no ids).
            raise ValueError(f"preset {self.name!r}: a sampled reference (reference_every > 1) "
                             f"needs a residual preset")

    @property
    def is_residual(self) -> bool:
        return self.metric == RESIDUAL

    @property
    def queries_all(self) -> bool:
        """True when the queries are every point of the data set (residual, queries == n)."""
        return self.is_residual and self.queries == self.n


_RBF_1_1 = RBF(lengthscale=1.0, variance=1.0)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("gold-d3", RESIDUAL, n=32768, d=3, inducing=512, queries=1024, k=50,
               predecessor_mode=False, kernel=_RBF_1_1),
        Preset("gold-d8", RESIDUAL, n=32768, d=8, inducing=512, queries=1024, k=8,
               predecessor_mode=False, kernel=_RBF_1_1),
        Preset("vecchia-d3", RESIDUAL, n=32768, d=3, inducing=512, queries=32768, k=50,
               predecessor_mode=True, kernel=_RBF_1_1),
        # Their full brute force takes minutes: --check times a sample of its row blocks.
        Preset("vecchia-65k", RESIDUAL, n=65536, d=3, inducing=512, queries=65536, k=50,
               predecessor_mode=True, kernel=_RBF_1_1, reference_every=4),
        Preset("vecchia-131k", RESIDUAL, n=131072, d=3, inducing=512, queries=131072, k=50,
               predecessor_mode=True, kernel=_RBF_1_1, reference_every=8),
        Preset("euclid-32k", EUCLIDEAN, n=32768, d=8, inducing=None, queries=1024, k=8,
               predecessor_mode=False, kernel=None),
        Preset("quick", RESIDUAL, n=4096, d=3, inducing=256, queries=256, k=50,
               predecessor_mode=False, kernel=_RBF_1_1),
    )
}


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (a Preset is returned unchanged); ValueError if unknown."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}"
        ) from None


def make_points(preset: str | Preset) -> np.ndarray:
    """(n, d) float64 data set: ``default_rng(seed).standard_normal((n, d))``."""
    p = get_preset(preset)
    return np.random.default_rng(p.seed).standard_normal((p.n, p.d))


def make_query_ids(preset: str | Preset) -> np.ndarray | None:
    """Sorted int64 dataset ids to query, or None when the preset queries every point."""
    p = get_preset(preset)
    if not p.is_residual:
        raise ValueError(
            f"preset {p.name!r} is Euclidean: it queries fresh points, see make_euclidean_queries"
        )
    if p.queries == p.n:
        return None
    ids = np.random.default_rng(p.seed + 2).choice(p.n, p.queries, replace=False)
    return np.sort(ids).astype(np.int64)


def make_euclidean_queries(preset: str | Preset) -> np.ndarray:
    """(q, d) float64 fresh query points: ``default_rng(seed + 3).standard_normal((q, d))``."""
    p = get_preset(preset)
    if p.is_residual:
        raise ValueError(
            f"preset {p.name!r} is residual: it queries dataset ids, see make_query_ids"
        )
    return np.random.default_rng(p.seed + 3).standard_normal((p.queries, p.d))


def scaled(preset: str | Preset, n: int, queries: int | None = None) -> Preset:
    """A smaller copy of a preset (same metric, d, k, mode), e.g. to warm up Numba.

    queries defaults to min(preset.queries, n), and to n in predecessor mode; inducing is
    capped at n.
    """
    p = get_preset(preset)
    if queries is None:
        queries = n if (p.predecessor_mode or p.queries_all) else min(p.queries, n)
    inducing = None if p.inducing is None else min(p.inducing, n)
    return dataclasses.replace(p, name=f"{p.name}@n={n}", n=n, queries=queries, inducing=inducing)


@dataclass(frozen=True, eq=False)
class Workload:
    """A preset's materialised data.

    points:    (n, d) float64 data set
    backend:   ResidualBackend for residual presets, None for Euclidean
    query_ids: sorted int64 dataset ids (residual), None for every point or for Euclidean
    queries:   (q, d) float64 fresh query points (Euclidean), None for residual
    """

    preset: Preset
    points: np.ndarray
    backend: object | None
    query_ids: np.ndarray | None
    queries: np.ndarray | None

    @property
    def fit_input(self):
        """What ``CoverTree.fit`` takes: the backend (residual) or the points (Euclidean)."""
        return self.backend if self.preset.is_residual else self.points

    @property
    def knn_queries(self):
        """What ``CoverTree.knn`` takes as queries: ids or None (residual), points (Euclidean)."""
        return self.query_ids if self.preset.is_residual else self.queries

    @property
    def n_queries(self) -> int:
        return self.preset.queries


def load_workload(preset: str | Preset, progress=None) -> Workload:
    """Build a preset's data; for residual presets this factors the backend (V, p).

    progress: None, or callable(done, n) given to ``build_residual_backend`` (points done).
    """
    p = get_preset(preset)
    points = make_points(p)
    if p.is_residual:
        from covertreex.metrics.residual import build_residual_backend

        backend = build_residual_backend(
            points, kernel=p.kernel, inducing_count=p.inducing, seed=p.seed, progress=progress
        )
        return Workload(p, points, backend, make_query_ids(p), None)
    return Workload(p, points, None, None, make_euclidean_queries(p))
