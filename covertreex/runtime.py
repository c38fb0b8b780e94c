"""Runtime: the frozen settings a tree is built and queried with, and the per-layer plans
they resolve to.

``Runtime(...)`` takes its settings from its arguments and the defaults; it never reads the
environment. ``Runtime.from_env()`` is the one place that does (COVERTREEX_* settings and
phase flags, and the thread counts a user pinned), once, when it is called, in the manner of
scikit-learn's configuration. ``Runtime.describe()`` says where each setting came from.

The audit phase flags are resolved here, once, into one plan per layer (``TilePlan`` for the
metric's tiles, ``WalkPlan`` for traversals, ``InsertPlan`` for the build, ``GuardPlan`` for
the thread guard); no other module reads ``Phases``. See docs/design.md, "Audit phases".
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field, replace

from ._validation import as_positive_int
from .phases import PHASE_NUMBERS, Phases, parse_bool
from .threads import THREAD_ENV, default_threads

METRICS = ("euclidean", "residual_correlation")
BATCH_ORDERS = ("natural", "random", "hilbert")
TRAVERSALS = ("pointwise", "blocked")

# Environment variables read by Runtime.from_env, per setting.
SETTING_ENV = {
    "batch_size": "COVERTREEX_BATCH_SIZE",
    "batch_order": "COVERTREEX_BATCH_ORDER",
    "seed": "COVERTREEX_SEED",
    "threads": "COVERTREEX_THREADS",
    "float32_audit": "COVERTREEX_FLOAT32_AUDIT",
}
PHASE_ENV = {name: f"COVERTREEX_PHASE_{name.upper()}" for name in PHASE_NUMBERS}
_PHASE_PREFIX = "COVERTREEX_PHASE_"
# The bounds of query_brute=None for the residual metric (``auto_brute``). A residual tree
# holds every point, so a predecessor-mode row with few predecessors walks through many nodes
# it may not take, and its blocked walk evaluates about as many pairs as a dense scan of its
# candidates, each dearer. The more points the tree holds beyond a row's limit, the dearer its
# walk, so the scan pays up to a larger limit in a larger tree (perf/README.md, "Brute force
# for early rows").
BRUTE_MIN, BRUTE_MAX = 32768, 40960


def auto_brute(metric: str, n: int) -> int:
    """The query_brute of ``Runtime(query_brute=None)`` for a tree of n points: for the
    residual metric half the points, but at least BRUTE_MIN and at most BRUTE_MAX; 0 (never
    scan) for Euclidean trees, for which a scan has not been measured against the walk."""
    if metric != "residual_correlation":
        return 0
    return min(max(n // 2, BRUTE_MIN), BRUTE_MAX)

# Under the thread guard BLAS and OpenMP run one thread each, as the audit plan's phase 7
# prescribes: the residual tiles are small GEMMs between Numba loops, and the walks already
# run one block per core (perf/README.md, "Thread guard", has the measurement).
GUARD_BLAS_THREADS = 1


@dataclass(frozen=True)
class TilePlan:
    """How the metric computes distance tiles. block_gemm: V_Q V_T^T by GEMM (else a dot
    product per pair); gemm_kernel_provider: kernel tiles by GEMM on centred coordinates
    (else a broadcast difference tensor); float32_staging: float32 GEMMs for the rows the
    error bound allows (only with block_gemm); float32_audit: recheck every float32 decision."""

    block_gemm: bool
    gemm_kernel_provider: bool
    float32_staging: bool
    float32_audit: bool


@dataclass(frozen=True)
class WalkPlan:
    """How traversals run. traversal: "pointwise" or "blocked"; nopython: blocked walks stay
    in Numba (else Python drives the loop and calls the tile per step); topk: bounded heaps
    (else full sorts); block: rows per tile; split: smallest half a kNN block splits into
    (0: blocks walk whole); seeds: seeded heap entries per neighbour asked for (0: none);
    brute: predecessor-mode rows with limits up to this are answered by brute force (0: none;
    None: ``auto_brute`` of the tree); workers: walk threads (None: the cores)."""

    traversal: str
    nopython: bool
    topk: bool
    block: int
    split: int
    seeds: int
    brute: int | None
    workers: int | None


@dataclass(frozen=True)
class InsertPlan:
    """How points are inserted: prefix-doubling batches up to batch_size, in batch_order,
    seeded by seed; pairwise_reuse: the conflict graph reuses the batch's distance tile
    (else it recomputes it pair by pair)."""

    batch_size: int
    batch_order: str
    seed: int
    pairwise_reuse: bool


@dataclass(frozen=True)
class GuardPlan:
    """Thread guard: when enabled, Numba runs numba_threads and BLAS/OpenMP blas_threads
    within each build and query."""

    enabled: bool
    numba_threads: int
    blas_threads: int


@dataclass(frozen=True)
class Plan:
    """The per-layer plans of one Runtime."""

    tiles: TilePlan
    walk: WalkPlan
    insert: InsertPlan
    guard: GuardPlan


_DEFAULTS = {
    "metric": "euclidean",
    "batch_size": 512,
    "batch_order": "hilbert",
    "seed": 42,
    "traversal": None,
    "query_block": 256,
    "query_split": 16,
    "query_seeds": 2,
    "query_brute": None,
    "threads": None,
    "blas_threads": None,
    "float32_audit": False,
}


@dataclass(frozen=True)
class Runtime:
    """Settings for building and querying a cover tree.

    metric:      "euclidean" (fit on an (n, d) array) or "residual_correlation"
                 (fit on a ``ResidualBackend``)
    phases:      audit phase flags (``Phases.all()`` by default)
    batch_size:  largest insertion batch; batches grow 1, 2, 4, ... up to it (prefix doubling)
    batch_order: order in which points enter the tree: "natural", "random" (seeded) or "hilbert"
    seed:        seed of the random batch order and of the independent-set priorities
    traversal:   "pointwise" (one point at a time, per-pair distances; the Euclidean default)
                 or "blocked" (a block of points walks together and evaluates its joint
                 frontier as one tile; the only traversal of the residual metric)
    query_block: rows per tile in blocked traversals
    query_split: coherent query blocks. A block of the blocked kNN traversal whose two halves
                 would each visit much less than their joint frontier walks on as two halves,
                 down to halves of query_split rows; predecessor-mode rows are walked in
                 Hilbert order within runs of consecutive ids (each about 1/8 as long as the
                 ids before it), so that halves are close in space. 0 turns both off: blocks
                 walk whole, and predecessor-mode blocks are consecutive ids (docs/design.md,
                 "Queries"). Only the nopython walk splits
    query_seeds: seeded heaps. Before a blocked kNN walk, each row's heap is filled with the
                 exact distances to its query_seeds * k nearest admissible points in
                 coordinate space (a k-d tree over the tree's coordinates), so the walk
                 prunes with a near-final k-th distance from its first level. 0 turns it off.
                 Results do not depend on it (docs/design.md, "Queries")
    query_brute: brute force for early rows. In predecessor mode, the blocked traversal
                 answers rows with at most query_brute candidates (ids below their own) by
                 an exact scan of all of them in dense tiles, as scikit-learn's
                 algorithm="brute", instead of walking the tree; those rows come first, in
                 id order. None: ``auto_brute`` of the tree's metric and size (residual:
                 n / 2 within 32768 .. 40960; euclidean: 0); 0 turns it off
                 (docs/design.md, "Queries")
    threads:     Numba threads under the thread guard, and worker threads of blocked walks,
                 which run that many blocks side by side (None: the cores available, as
                 scipy's workers=-1)
    blas_threads: BLAS and OpenMP threads under the thread guard (None: 1)
    float32_audit: with float32 staging on, recompute in float64 every pair whose float32
                 value the error bound let the walk prune, and raise ValueError if one was
                 pruned wrongly (slow; for checking the bound, not for production)
    """

    metric: str | None = None
    phases: Phases | None = None
    batch_size: int | None = None
    batch_order: str | None = None
    seed: int | None = None
    traversal: str | None = None
    query_block: int | None = None
    query_split: int | None = None
    query_seeds: int | None = None
    query_brute: int | None = None
    threads: int | None = None
    blas_threads: int | None = None
    float32_audit: bool | None = None
    _sources: tuple = field(default=(), compare=False, repr=False)
    plan: Plan | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self):
        given = dict(self._sources)
        sources = {}
        for name, default in _DEFAULTS.items():
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, default)
            sources[name] = given.get(name, "default" if value is None else "argument")
        phases = self.phases
        if phases is None:
            phases = Phases.all()
        elif not isinstance(phases, Phases):
            raise TypeError(f"phases must be a covertreex.Phases, got {type(phases).__name__}")
        for name in PHASE_NUMBERS:
            key = f"phases.{name}"
            sources[key] = given.get(key, "default" if self.phases is None else "argument")
        object.__setattr__(self, "phases", phases)
        self._validate()
        if self.traversal is None:
            object.__setattr__(self, "traversal", "blocked" if self.metric == METRICS[1] else "pointwise")
        object.__setattr__(self, "_sources", tuple(sources.items()))
        object.__setattr__(self, "plan", self._resolve())

    @classmethod
    def from_env(cls, environ=None, **settings) -> "Runtime":
        """A Runtime whose settings not given in ``settings`` come from the environment
        (``environ``, default ``os.environ``): the COVERTREEX_* variables of SETTING_ENV,
        COVERTREEX_PHASE_<NAME>=0|1 for each phase flag (unless ``phases`` is given), and
        for the thread guard NUMBA_NUM_THREADS (threads) and the smallest of
        OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS (blas_threads).
        Raises ValueError on an unknown COVERTREEX_PHASE_* variable or a malformed value."""
        environ = os.environ if environ is None else environ
        sources = {name: "argument" for name in settings}
        for name, key in SETTING_ENV.items():
            if name not in settings and key in environ:
                settings[name] = _env_value(name, key, environ[key])
                sources[name] = "environment"
        pinned = {key: _env_int(key, environ[key]) for key in THREAD_ENV if key in environ}
        if "threads" not in settings and "NUMBA_NUM_THREADS" in pinned:
            settings["threads"] = pinned["NUMBA_NUM_THREADS"]
            sources["threads"] = "environment"
        blas = [pinned[key] for key in THREAD_ENV[:3] if key in pinned]
        if "blas_threads" not in settings and blas:
            settings["blas_threads"] = min(blas)
            sources["blas_threads"] = "environment"
        if "phases" not in settings:
            changes = _env_phases(environ)
            settings["phases"] = replace(Phases.all(), **changes)
            for name in PHASE_NUMBERS:
                sources[f"phases.{name}"] = "environment" if name in changes else "default"
        else:
            sources.update({f"phases.{name}": "argument" for name in PHASE_NUMBERS})
        return cls(**settings, _sources=tuple(sources.items()))

    def _validate(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {', '.join(METRICS)}")
        if self.batch_order not in BATCH_ORDERS:
            raise ValueError(
                f"unknown batch_order {self.batch_order!r}; expected one of {', '.join(BATCH_ORDERS)}"
            )
        if self.traversal is not None and self.traversal not in TRAVERSALS:
            raise ValueError(
                f"unknown traversal {self.traversal!r}; expected None or one of {', '.join(TRAVERSALS)}"
            )
        if self.metric == "residual_correlation" and self.traversal == "pointwise":
            raise ValueError(
                "traversal='pointwise' is a Euclidean traversal; the residual metric always takes "
                "the blocked traversal, whose variants are chosen by phases. Leave traversal=None."
            )
        as_positive_int(self.batch_size, "batch_size")
        as_positive_int(self.query_block, "query_block")
        for name, zero in (("query_split", "whole blocks"), ("query_seeds", "no seeds"),
                           ("query_brute", "no brute force")):
            value = getattr(self, name)
            if value is None and name == "query_brute":
                continue  # auto_brute of the fitted tree
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an integer >= 0 (0: {zero}), got {value!r}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0 (0: {zero}), got {value}")
        for name in ("threads", "blas_threads"):
            if getattr(self, name) is not None:
                as_positive_int(getattr(self, name), name)
        if not isinstance(self.float32_audit, bool):
            raise TypeError(f"float32_audit must be True or False, got {self.float32_audit!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an integer, got {self.seed!r}")

    def _resolve(self) -> Plan:
        ph = self.phases
        return Plan(
            tiles=TilePlan(block_gemm=ph.block_gemm, gemm_kernel_provider=ph.gemm_kernel_provider,
                           float32_staging=ph.float32_staging and ph.block_gemm,
                           float32_audit=self.float32_audit),
            walk=WalkPlan(traversal=self.traversal, nopython=ph.nopython_chunk_loop,
                          topk=ph.topk_selection, block=self.query_block, split=self.query_split,
                          seeds=self.query_seeds, brute=self.query_brute, workers=self.threads),
            insert=InsertPlan(batch_size=self.batch_size, batch_order=self.batch_order,
                              seed=self.seed, pairwise_reuse=ph.pairwise_reuse),
            guard=GuardPlan(enabled=ph.thread_guard,
                            numba_threads=self.threads or default_threads(),
                            blas_threads=self.blas_threads or GUARD_BLAS_THREADS),
        )

    def describe(self) -> dict[str, dict]:
        """Every setting with its value and source ("default", "environment" or "argument")."""
        sources = dict(self._sources)
        out = {name: {"value": getattr(self, name), "source": sources[name]} for name in _DEFAULTS}
        for name, value in self.phases.as_dict().items():
            out[f"phases.{name}"] = {"value": value, "source": sources[f"phases.{name}"]}
        return out


def _env_phases(environ) -> dict[str, bool]:
    changes = {}
    for key, value in environ.items():
        if not key.startswith(_PHASE_PREFIX):
            continue
        name = key[len(_PHASE_PREFIX):].lower()
        if name not in PHASE_NUMBERS:
            raise ValueError(
                f"unknown phase in environment variable {key}; known: {', '.join(PHASE_ENV.values())}"
            )
        changes[name] = parse_bool(value, key)
    return changes


def _env_value(name: str, key: str, raw: str):
    if name == "batch_order":
        return raw
    if name == "float32_audit":
        return parse_bool(raw, key)
    return _env_int(key, raw)


def _env_int(key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {key} must be an integer, got {raw!r}") from None
