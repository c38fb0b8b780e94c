"""Shared helpers of the asv suites: profile, presets, cached workloads, Numba warm-up.

Nothing here is a benchmark (no name starts with time_/track_/peakmem_/mem_). covertreex is
imported lazily, inside setup, so that discovery works on any commit; a commit that lacks
what a suite needs makes its setup raise NotImplementedError, which asv records as skipped.

The preset is a benchmark parameter rather than a hidden setting: results of the quick and
the gold profile therefore land in separate series (``preset='quick'`` vs
``preset='gold-d3'``) and are never compared with each other. The box profile is the gold one
plus the large Vecchia suites (benchmarks_vecchia), which every other profile skips.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROFILE_ENV = "COVERTREEX_ASV_PROFILE"
PROFILES = ("quick", "gold", "box")


def _profile() -> str:
    value = os.environ.get(PROFILE_ENV, "").strip() or "quick"
    if value not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={value!r}: expected one of {', '.join(PROFILES)}")
    return value


PROFILE = _profile()
BOX = PROFILE == "box"
GOLD = PROFILE == "gold" or BOX


# NUMBA_CACHE_DIR is left to whoever runs asv: asv hands its own environment to every
# benchmark process (the Makefile exports a folder keyed on the sources). Each commit's wheel
# is installed afresh, which gives every source file a new modification time, and Numba
# rejects a cached kernel whose source file's time changed: two commits never share kernels.

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
# The benchmark box's own presets: benchmarks_vecchia's parameters in every profile, so that
# elsewhere asv lists those suites as skipped (require_box) rather than not at all.
VECCHIA_PRESETS = ["vecchia-65k", "vecchia-131k"]


def require_box() -> None:
    """NotImplementedError (asv: skipped) unless COVERTREEX_ASV_PROFILE=box."""
    if not BOX:
        raise NotImplementedError(f"runs only on the benchmark box ({PROFILE_ENV}=box)")


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

# The harness's one Runtime-from-preset and one Numba warm-up. asv runs the suites of this
# checkout against the wheel of another commit, which may predate covertreex_bench: the file
# is loaded by path and finds that commit's workloads itself (covertreex.workloads before the
# harness moved out of the index).
HARNESS_RUNTIME = Path(__file__).resolve().parents[1] / "covertreex_bench" / "runtime.py"


@functools.lru_cache(maxsize=None)
def harness():
    spec = importlib.util.spec_from_file_location("_asv_harness_runtime", HARNESS_RUNTIME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def workloads():
    """The workloads module of the installed commit; NotImplementedError (asv: skipped) when
    the commit has none."""
    try:
        return harness().workloads_module()
    except ModuleNotFoundError as exc:
        raise NotImplementedError(str(exc)) from None


def preset(name: str):
    """The workloads.Preset called name, or its scaled copy for 'NAME@n=N'."""
    base, sep, size = name.partition("@n=")
    if not sep:
        return workloads().get_preset(name)
    return workloads().scaled(base, int(size))


def bench():
    """The bench module of the installed commit's harness (covertreex_bench.bench, beside
    covertreex); NotImplementedError (asv: skipped) when the commit has none."""
    package = workloads().__name__.rpartition(".")[0]
    if package != "covertreex_bench":
        raise NotImplementedError(f"this commit's harness is {package}, without covertreex_bench.bench")
    return importlib.import_module("covertreex_bench.bench")


@functools.lru_cache(maxsize=None)
def workload(name: str):
    """The materialised workload of a preset (residual: with its backend), once per process."""
    return workloads().load_workload(preset(name))


def runtime(name: str, phases=None):
    """The Runtime preset ``name`` is benchmarked with (phases needs covertreex.phases)."""
    require("", "CoverTree", "Runtime")
    return harness().make_runtime(preset(name), phases)


_WARM: set = set()


def warm_up(name: str, phases=None) -> None:
    """Compile the Numba kernels a fit + knn of preset `name` takes, on a small copy, once per
    process and (metric, phases). Call it from setup so that time_* measure warm code."""
    p = preset(name)
    key = (p.metric, None if phases is None else repr(phases))
    if key in _WARM:
        return
    harness().warm_up(p, phases)
    _WARM.add(key)


def warm_up_in_child(name: str) -> None:
    """Compile preset ``name``'s kernels in a child interpreter (this file loaded by path), which
    fills the Numba cache (NUMBA_CACHE_DIR, else __pycache__ beside the installed sources): a
    later warm_up here only loads them. Keeps compilation's memory out of this process, so a
    peakmem_ figure does not depend on whether the cache was cold."""
    script = ("import importlib.util\n"
              f"spec = importlib.util.spec_from_file_location('_asv_common_child', {str(Path(__file__))!r})\n"
              "module = importlib.util.module_from_spec(spec)\n"
              "spec.loader.exec_module(module)\n"
              f"module.warm_up({name!r})\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"warm-up of {name} in a child process failed:\n{proc.stderr}")


def median(values):
    return float(statistics.median(values))
