"""Shared helpers of the asv suites: profile, presets, cached workloads, Numba warm-up.

Nothing here is a benchmark (no name starts with time_/track_/peakmem_/mem_). covertreex is
imported lazily, inside setup, so that discovery works on any commit; a commit that lacks
what a suite needs makes its setup raise NotImplementedError, which asv records as skipped.

The preset is a benchmark parameter rather than a hidden setting: results of the quick and
the gold profile therefore land in separate series (``preset='quick'`` vs
``preset='gold-d3'``) and are never compared with each other.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import statistics
import tempfile
from pathlib import Path

PROFILE_ENV = "COVERTREEX_ASV_PROFILE"
PROFILES = ("quick", "gold")


def _profile() -> str:
    value = os.environ.get(PROFILE_ENV, "").strip() or "quick"
    if value not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={value!r}: expected one of {', '.join(PROFILES)}")
    return value


PROFILE = _profile()
GOLD = PROFILE == "gold"


def _numba_cache_dir() -> str | None:
    """A Numba cache folder keyed on a hash of the installed covertreex sources.

    Numba revalidates a cached kernel against its own file only, not against the files of the
    kernels it calls, so a cache shared by two commits (or by an edited working tree) can run
    stale machine code. One folder per source hash, under NUMBA_CACHE_DIR if set (else the
    temp dir), keeps every commit on its own code and still lets repeated runs reuse it.
    """
    spec = importlib.util.find_spec("covertreex")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "covertreex-asv-numba")
    return os.path.join(base, f"asv-{digest.hexdigest()[:16]}")


# Set before anything imports numba (covertreex is only imported inside setup).
_cache = _numba_cache_dir()
if _cache is not None:
    os.environ["NUMBA_CACHE_DIR"] = _cache

# Preset names as covertreex_bench.workloads knows them; "NAME@n=N" is workloads.scaled(NAME, N),
# the name scaled() itself gives the smaller copy.
if GOLD:
    RESIDUAL_PRESETS = ["gold-d3", "gold-d8"]
    EUCLIDEAN_PRESETS = ["euclid-32k"]
    LADDER_PRESET = "gold-d3"
    # The tile micro-benchmark needs n >= 8192 ids: the gold backend has 32768.
    TILE_PRESET = "gold-d3"
else:
    RESIDUAL_PRESETS = ["quick"]
    EUCLIDEAN_PRESETS = ["euclid-32k@n=8192"]
    LADDER_PRESET = "quick"
    # quick has n = 4096; the same preset scaled to 8192 points (256 inducing, d = 3).
    TILE_PRESET = "quick@n=8192"

# Builds per ladder step whose telemetry medians the ladder tracks.
LADDER_REPEATS = 3

# Labels of Phases.ladder() (covertreex/phases.py) as of this suite. They are asv parameter
# values, which must not depend on the installed commit (asv maps parameters by position),
# so they are spelled out here. setup skips a step that the installed commit does not have;
# the ladder's setup_cache warns (stderr) about library steps missing from this list.
LADDER_LABELS = [
    "baseline",
    "+1 block_gemm",
    "+2 gemm_kernel_provider",
    "+3 pairwise_reuse",
    "+4 float32_staging",
    "+5 topk_selection",
    "+6 nopython_chunk_loop",
    "+7 thread_guard",
]

# Warm-up workload: three insertion batches of 512 exercise the multi-batch paths.
WARMUP_N = 1100
WARMUP_QUERIES = 64


def require(module: str, *attrs: str):
    """Import covertreex.<module> and check it has attrs; NotImplementedError (asv: skipped)
    when this commit has no such module or attribute."""
    name = f"covertreex.{module}" if module else "covertreex"
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a module that does not exist in this commit is a skip; covertreex failing to
        # import (or a module failing inside) is a real failure and propagates.
        if module and exc.name == name:
            raise NotImplementedError(f"{name} does not exist in this commit") from None
        raise
    missing = [a for a in attrs if not hasattr(mod, a)]
    if missing:
        raise NotImplementedError(f"{name} lacks {', '.join(missing)} in this commit")
    return mod


def preset(name: str):
    """The workloads.Preset called name, or its scaled copy for 'NAME@n=N'."""
    workloads = require("workloads", "get_preset", "scaled", "load_workload")
    base, sep, size = name.partition("@n=")
    if not sep:
        return workloads.get_preset(name)
    return workloads.scaled(base, int(size))


@functools.lru_cache(maxsize=None)
def workload(name: str):
    """The materialised workload of a preset (residual: with its backend), once per process."""
    workloads = require("workloads", "load_workload")
    return workloads.load_workload(preset(name))


def runtime(metric: str, phases=None):
    """Runtime(metric=..., phases=...); phases needs a commit with covertreex.phases."""
    covertreex = require("", "CoverTree", "Runtime")
    if phases is None:
        return covertreex.Runtime(metric=metric)
    return covertreex.Runtime(metric=metric, phases=phases)


_WARM: set = set()


def warm_up(name: str, phases=None) -> None:
    """Compile the Numba kernels a fit + knn of preset `name` takes, on a small copy, once per
    process and (metric, phases). Call it from setup so that time_* measure warm code."""
    p = preset(name)
    key = (p.metric, None if phases is None else repr(phases))
    if key in _WARM:
        return
    workloads = require("workloads", "scaled", "load_workload")
    covertreex = require("", "CoverTree")
    small = workloads.scaled(p, WARMUP_N, None if p.queries_all else WARMUP_QUERIES)
    w = workloads.load_workload(small)
    tree = covertreex.CoverTree(runtime(p.metric, phases)).fit(w.fit_input)
    tree.knn(w.knn_queries, small.k, predecessor_mode=small.predecessor_mode)
    _WARM.add(key)


def median(values):
    return float(statistics.median(values))
