"""Runtime: the frozen settings a tree is built and queried with.

Each setting comes from, in order of precedence, the constructor argument, an
environment variable, or the default; ``Runtime.describe()`` says which.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields, replace

from ._validation import as_positive_int
from .phases import PHASE_NUMBERS, Phases, parse_bool
from .threads import configure_threading, thread_limits  # noqa: F401  (public here)

METRICS = ("euclidean", "residual_correlation")
BATCH_ORDERS = ("natural", "random", "hilbert")
STRATEGIES = ("pointwise", "blocked")

_DEFAULTS = {
    "metric": "euclidean",
    "batch_size": 512,
    "batch_order": "hilbert",
    "seed": 42,
    "strategy": None,
    "query_block": 256,
    "threads": None,
    "float32_audit": False,
}
# Environment variables read by Runtime (settings) and by the harness (the rest).
SETTING_ENV = {
    "batch_size": "COVERTREEX_BATCH_SIZE",
    "batch_order": "COVERTREEX_BATCH_ORDER",
    "seed": "COVERTREEX_SEED",
    "threads": "COVERTREEX_THREADS",
    "float32_audit": "COVERTREEX_FLOAT32_AUDIT",
}
PHASE_ENV = {name: f"COVERTREEX_PHASE_{name.upper()}" for name in PHASE_NUMBERS}
HARNESS_ENV = ("COVERTREEX_ASV_PROFILE",)
KNOWN_ENV = tuple(SETTING_ENV.values()) + tuple(PHASE_ENV.values()) + HARNESS_ENV


def _warn_unknown_env() -> None:
    """One warning naming every unknown COVERTREEX_* variable; never an error at import."""
    # Misspelled phase variables are errors when a Runtime reads them, not warnings here.
    other = sorted(
        key for key in os.environ
        if key.startswith("COVERTREEX_") and key not in KNOWN_ENV
        and not key.startswith("COVERTREEX_PHASE_")
    )
    if other:
        warnings.warn(
            f"ignoring unknown environment variable(s) {', '.join(other)}; "
            f"covertreex reads: {', '.join(KNOWN_ENV)}",
            RuntimeWarning,
            stacklevel=2,
        )


def _env_phases(environ) -> tuple[dict[str, bool], list[str]]:
    changes = {}
    for key, value in environ.items():
        if not key.startswith("COVERTREEX_PHASE_"):
            continue
        name = key[len("COVERTREEX_PHASE_"):].lower()
        if name not in PHASE_NUMBERS:
            raise ValueError(
                f"unknown phase in environment variable {key}; known: {', '.join(PHASE_ENV.values())}"
            )
        changes[name] = parse_bool(value, key)
    return changes, sorted(changes)


@dataclass(frozen=True)
class Runtime:
    """Settings for building and querying a cover tree.

    metric:      "euclidean" (fit on an (n, d) array) or "residual_correlation"
                 (fit on a ``ResidualBackend``)
    phases:      audit phase flags (``Phases.all()`` by default); COVERTREEX_PHASE_<NAME>=0|1
                 overrides a flag that the argument does not set
    batch_size:  largest insertion batch; batches grow 1, 2, 4, ... up to it (prefix doubling)
    batch_order: order in which points enter the tree: "natural", "random" (seeded) or "hilbert"
    seed:        seed of the random batch order and of the independent-set priorities
    strategy:    Euclidean traversal, None for the default "pointwise" (one point at a time,
                 per-pair distances) or "blocked" (a block of points walks together and
                 evaluates its joint frontier as one tile). Residual traversal is chosen by
                 the phases and ignores it.
    query_block: rows per tile in blocked traversals
    threads:     Numba threads under the thread guard, and worker threads of blocked walks,
                 which run that many blocks side by side (None: the number of cores, as
                 scipy's workers=-1); BLAS and OpenMP get one thread (see covertreex.threads)
    float32_audit: with float32 staging on, recompute in float64 every pair whose float32
                 value the error bound let the walk prune, and raise ValueError if one was
                 pruned wrongly (slow; for checking the bound, not for production)
    """

    metric: str | None = None
    phases: Phases | None = None
    batch_size: int | None = None
    batch_order: str | None = None
    seed: int | None = None
    strategy: str | None = None
    query_block: int | None = None
    threads: int | None = None
    float32_audit: bool | None = None
    _sources: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self):
        sources = {}
        environ = os.environ
        for f in fields(self):
            if f.name in ("_sources", "phases"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                sources[f.name] = "argument"
                continue
            env_key = SETTING_ENV.get(f.name)
            if env_key and env_key in environ:
                raw = environ[env_key]
                if f.name == "batch_order":
                    value = raw
                elif f.name == "float32_audit":
                    value = parse_bool(raw, env_key)
                else:
                    value = _env_int(env_key, raw)
                sources[f.name] = "environment"
            else:
                value = _DEFAULTS[f.name]
                sources[f.name] = "default"
            object.__setattr__(self, f.name, value)
        phases = self.phases
        env_changes, env_names = _env_phases(environ)
        if phases is None:
            phases = replace(Phases.all(), **env_changes)
            for name in PHASE_NUMBERS:
                sources[f"phases.{name}"] = "environment" if name in env_names else "default"
        elif not isinstance(phases, Phases):
            raise TypeError(f"phases must be a covertreex.Phases, got {type(phases).__name__}")
        else:
            for name in PHASE_NUMBERS:
                sources[f"phases.{name}"] = "argument"
        object.__setattr__(self, "phases", phases)
        object.__setattr__(self, "_sources", tuple(sources.items()))
        self._validate()

    def _validate(self):
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
        if self.metric == "residual_correlation" and self.strategy is not None:
            raise ValueError(
                f"strategy={self.strategy!r} selects a Euclidean traversal; the residual metric "
                "always takes the residual (blocked tile) traversal, whose variants are chosen "
                "by phases. Leave strategy=None."
            )
        as_positive_int(self.batch_size, "batch_size")
        as_positive_int(self.query_block, "query_block")
        if self.threads is not None:
            as_positive_int(self.threads, "threads")
        if not isinstance(self.float32_audit, bool):
            raise TypeError(f"float32_audit must be True or False, got {self.float32_audit!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an integer, got {self.seed!r}")

    @property
    def traversal(self) -> str:
        """The traversal in force: "blocked" for the residual metric, else the strategy
        ("pointwise" by default)."""
        if self.metric == "residual_correlation":
            return "blocked"
        return self.strategy or "pointwise"

    def describe(self) -> dict[str, dict]:
        """Every setting with its value and source ("default", "environment" or "argument")."""
        sources = dict(self._sources)
        out = {}
        for f in fields(self):
            if f.name in ("_sources", "phases"):
                continue
            out[f.name] = {"value": getattr(self, f.name), "source": sources[f.name]}
        for name, value in self.phases.as_dict().items():
            out[f"phases.{name}"] = {"value": value, "source": sources[f"phases.{name}"]}
        return out


def _env_int(key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {key} must be an integer, got {raw!r}") from None


_warn_unknown_env()
