"""Query wall of predecessor kNN on one process with two walk threads against two processes with
one walk thread each, without Dask: what process separation alone costs a LocalCluster.

    .venv/bin/python perf/processes_vs_threads.py [--n 65536] [--rows 16384]

Each process builds the same vecchia-d3 tree (scaled to --n) and warms up; then, at a common
start (a multiprocessing barrier), it queries its share of the top --rows ids: with two
processes, every other block of 256 rows of the walk order, so both get the same mix. Prints
each process's query wall; the two-process figure is the slower of the two.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import warnings
from dataclasses import replace

import numpy as np


def _run(n: int, rows: int, part: int, parts: int, barrier, out) -> None:
    from covertreex import CoverTree
    from covertreex_bench.runtime import make_runtime
    from covertreex_bench.workloads import get_preset, load_workload, scaled

    warnings.simplefilter("ignore", RuntimeWarning)  # the thread-guard note
    preset = get_preset("vecchia-d3")
    preset = preset if n == preset.n else scaled(preset, n)
    tree = CoverTree(make_runtime(preset)).fit(load_workload(preset).backend)
    tree = replace(tree, runtime=replace(tree.runtime, threads=2 // parts))
    ids = np.arange(n - rows, n)
    order = tree._walk_order(ids, tree.metric.backend.coords[ids], True)
    step = tree.runtime.query_block
    mine = np.concatenate([order[a:a + step] for a in range(part * step, rows, parts * step)])
    tree._knn_report_block(ids[mine[:step]], preset.k, predecessor_mode=True, own_ids=True)
    barrier.wait()
    start = time.perf_counter()
    tree._knn_report_block(ids[mine], preset.k, predecessor_mode=True, own_ids=True)
    out.put((part, time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=65536)
    parser.add_argument("--rows", type=int, default=16384)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    for parts in (1, 2, 1, 2):
        barrier, out = ctx.Barrier(parts), ctx.Queue()
        procs = [ctx.Process(target=_run, args=(args.n, args.rows, p, parts, barrier, out))
                 for p in range(parts)]
        for p in procs:
            p.start()
        walls = [out.get()[1] for _ in procs]
        for p in procs:
            p.join()
        label = "1 process, 2 walk threads" if parts == 1 else "2 processes, 1 walk thread each"
        print(f"{label}: query wall {max(walls):.2f} s ({', '.join(f'{w:.2f}' for w in walls)})",
              flush=True)


if __name__ == "__main__":
    main()
