"""The one place the harness turns a preset into a Runtime, and the one Numba warm-up.

This file imports nothing from covertreex_bench (only covertreex, lazily and absolutely), so
``perf/compare.py`` and the asv suites can load it by path and measure a commit from before
the harness moved out of the index: there ``workloads_module()`` finds ``covertreex.workloads``.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path

# Warm-up instance: three insertion batches of 512 exercise the multi-batch paths.
WARMUP_N = 1100
WARMUP_QUERIES = 64

_WORKLOADS = ("covertreex_bench.workloads", "covertreex.workloads")


def workloads_module():
    """The workloads module that sits beside the imported covertreex package.

    covertreex_bench.workloads in a tree that has the harness, else covertreex.workloads (the
    trees before the move). "Beside" matters for perf/compare.py: the base commit is imported
    through PYTHONPATH while an editable install may still offer this checkout's harness.
    """
    import covertreex

    root = Path(covertreex.__file__).resolve().parent.parent
    for name in _WORKLOADS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in (name, name.rpartition(".")[0]):
                raise
            continue
        if Path(module.__file__).resolve().parent.parent == root:
            return module
    raise ModuleNotFoundError(f"neither {' nor '.join(_WORKLOADS)} sits beside covertreex in {root}",
                              name=_WORKLOADS[0])


def make_runtime(preset, phases=None, threads=None, traversal=None):
    """The Runtime a preset is benchmarked with: its metric, batch size and seed.

    phases, threads or traversal None leave that setting to the COVERTREEX_* environment and
    then to Runtime's defaults (all phases on, the cores available, the metric's traversal).
    """
    from covertreex import Runtime

    settings = {"metric": preset.metric, "batch_size": preset.batch_size, "seed": preset.seed}
    if phases is not None:
        settings["phases"] = phases
    if threads is not None:
        settings["threads"] = threads
    if traversal is not None:
        # The index renames the setting from strategy to traversal; older commits have strategy.
        names = {f.name for f in dataclasses.fields(Runtime)}
        settings["traversal" if "traversal" in names else "strategy"] = traversal
    # from_env reads the COVERTREEX_* settings; a Runtime without it reads them itself.
    return getattr(Runtime, "from_env", Runtime)(**settings)


def warm_up(preset, phases=None, threads=None, traversal=None, n: int = WARMUP_N) -> float:
    """Compile the kernels a preset's runs need on a tiny copy of it; returns seconds taken.

    The copy has the preset's metric, dimension, k and query mode and runs under the same
    phases and traversal: each of them selects its own kernels. In predecessor mode the copy's
    rows are queried twice: as the copy's size answers them (a tree this small scans every
    row, ``query_brute``) and walked, as the preset's rows above the scan bound are; without
    the second pass the walk's kNN kernels would compile inside the first timed query.
    """
    from covertreex import CoverTree

    workloads = workloads_module()
    size = min(n, preset.n)
    small = workloads.scaled(preset, size, None if preset.queries_all else min(WARMUP_QUERIES, size))
    start = time.perf_counter()
    workload = workloads.load_workload(small)
    runtime = make_runtime(small, phases, threads, traversal)
    runtimes = [runtime]
    # Commits from before the scan have no query_brute (perf/compare.py warms them up too).
    if small.predecessor_mode and "query_brute" in {f.name for f in dataclasses.fields(runtime)}:
        runtimes.append(dataclasses.replace(runtime, query_brute=0))
    for rt in runtimes:
        tree = CoverTree(rt).fit(workload.fit_input)
        tree.knn_report(workload.knn_queries, small.k, predecessor_mode=small.predecessor_mode)
    return time.perf_counter() - start
