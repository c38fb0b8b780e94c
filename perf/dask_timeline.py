"""Where a LocalCluster's kNN run spends its time, against the library's own threads.

    .venv/bin/python perf/dask_timeline.py [--preset vecchia-65k] [--workers 2] [--dask-trim]

Builds the preset's tree, times its queries twice with the library's threads (the second run
counts: the first compiles), then runs the same queries on a LocalCluster of --workers
single-threaded worker processes (after one warm-up query) and prints:

- both walls, and whether the cluster's answers equal the library's bit for bit;
- per worker, from Dask's task stream: its tasks, the seconds they computed and when its last
  one ended, so idle gaps and a ragged end show as compute well below the wall;
- the CPU seconds each process of the run used (this one, which holds the scheduler and the
  client, and each worker), so Dask's own work shows apart from the walks;
- the walks' thread seconds: the blocks' own query walls summed, against the library's wall
  times its thread count.

Where the cluster is slower than the library while its workers compute without gaps, the
walks themselves run slower in the workers, and the cause is in the worker processes, not
in the scheduling. The workers start as ``covertreex bench --dask local:N`` starts them,
without Dask's MALLOC_TRIM_THRESHOLD_ (``covertreex_bench.dask_bench.UNTRIMMED``);
--dask-trim keeps Dask's default (docs/distributed.md, "Worker memory settings").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psutil


def _cpu_seconds(proc) -> dict:
    """CPU seconds (user + system) of proc and each of its descendants, by a short label."""
    out = {"this process (scheduler, client)": sum(proc.cpu_times()[:2])}
    for child in proc.children(recursive=True):
        try:
            out[f"pid {child.pid}"] = sum(child.cpu_times()[:2])
        except psutil.Error:  # a process that ended between the listing and the read
            continue
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vecchia-65k")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dask-trim", action="store_true",
                        help="start the workers with Dask's default MALLOC_TRIM_THRESHOLD_")
    args = parser.parse_args()

    import dask
    from distributed import Client, LocalCluster, get_task_stream

    from covertreex import CoverTree
    from covertreex.distributed import knn_report, scatter_tree
    from covertreex_bench.dask_bench import UNTRIMMED, for_workers
    from covertreex_bench.runtime import make_runtime
    from covertreex_bench.workloads import get_preset, load_workload

    preset = get_preset(args.preset)
    workload = load_workload(preset)
    tree = CoverTree(make_runtime(preset)).fit(workload.fit_input)
    queries, k, mode = workload.knn_queries, preset.k, preset.predecessor_mode
    for _ in range(2):
        start = time.perf_counter()
        idx, dist, _ = tree.knn_report(queries, k, predecessor_mode=mode)
        library_s = time.perf_counter() - start
    threads = tree.runtime.plan.walk.workers or tree.runtime.plan.guard.numba_threads
    with dask.config.set({} if args.dask_trim else UNTRIMMED), LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True,
            dashboard_address=None) as cluster, Client(cluster) as client:
        shipped = for_workers(tree, client)
        future = scatter_tree(client, shipped)
        warm = np.array([tree.n - 1]) if preset.is_residual else queries[:1]
        knn_report(shipped, warm, k, client=client, tree_future=future, predecessor_mode=mode)
        me = psutil.Process()
        cpu_before = _cpu_seconds(me)
        with get_task_stream(client=client) as stream:
            start = time.perf_counter()
            cidx, cdist, _, blocks = knn_report(shipped, queries, k, client=client,
                                                tree_future=future, predecessor_mode=mode,
                                                return_blocks=True)
            cluster_s = time.perf_counter() - start
        cpu_after = _cpu_seconds(me)
    equal = np.array_equal(idx, cidx) and np.array_equal(dist, cdist)
    trim = "Dask's MALLOC_TRIM_THRESHOLD_" if args.dask_trim else "no MALLOC_TRIM_THRESHOLD_"
    print(f"{args.preset}: library {library_s:.2f} s on {threads} thread(s); cluster "
          f"{cluster_s:.2f} s on {args.workers} worker(s) with {trim} "
          f"({cluster_s / library_s:.3f}x); answers equal: {'yes' if equal else 'NO'}")
    tasks = [t for t in stream.data if str(t["key"]).startswith("covertreex-knn")]
    origin = min(s["start"] for t in tasks for s in t["startstops"])
    for worker in sorted({t["worker"] for t in tasks}):
        spans = [s for t in tasks if t["worker"] == worker for s in t["startstops"]
                 if s["action"] == "compute"]
        busy = sum(s["stop"] - s["start"] for s in spans)
        end = max(s["stop"] for s in spans) - origin
        print(f"  worker {worker}: {len(spans)} tasks, computing {busy:.2f} s, last one ended "
              f"at {end:.2f} s")
    print("  CPU seconds during the cluster run:")
    for name, after in cpu_after.items():
        print(f"    {name}: {after - cpu_before.get(name, 0.0):.2f}")
    walks = sum(b.query_wall_ms for b in blocks) / 1e3
    print(f"  walks: the blocks' query walls sum to {walks:.2f} s; the library's threads had "
          f"{threads * library_s:.2f} thread seconds ({walks / (threads * library_s):.3f}x)")


if __name__ == "__main__":
    main()
