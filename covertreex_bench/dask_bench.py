"""``covertreex bench --dask SPEC``: the preset's queries on a Dask cluster.

The tree is built and queried here, as without ``--dask``; the same queries then run through
``covertreex.distributed.knn_report`` on the cluster's workers. The local queries, with the
library's own threads, are the baseline of the query-phase speed-up, timed in the same run;
the result's recall, query figures and telemetry are the cluster's. SPEC is ``local:N`` (a ``LocalCluster`` of N single-threaded worker processes,
started and stopped here) or a scheduler address (``tcp://host:8786``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time

from .common import BenchError

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")
INSTALL_HINT = "pip install 'covertreex[dask]'"


def parse_spec(spec: str) -> tuple[str, int | str]:
    """("local", workers) or ("address", scheduler address) for a --dask SPEC; BenchError
    naming the accepted forms otherwise, and when dask.distributed is not installed."""
    local = _LOCAL.match(spec)
    if local and int(local.group(1)) >= 1:
        kind, value = "local", int(local.group(1))
    elif _ADDRESS.match(spec):
        kind, value = "address", spec
    else:
        raise BenchError(f"--dask {spec!r}: expected local:N (N >= 1 worker processes) or a "
                         "scheduler address such as tcp://host:8786")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise BenchError(f"--dask needs dask.distributed, which is not installed: "
                         f"{INSTALL_HINT}") from None
    return kind, value


# Dask's nanny starts workers with covertreex.distributed.TRIM_VARIABLE set, which slows the
# walks (its comment there says why). None unsets a pre-spawn variable.
UNTRIMMED = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextlib.contextmanager
def open_client(spec: str):
    """A ``distributed.Client`` for SPEC; a local cluster is closed on exit. Local workers
    start without Dask's MALLOC_TRIM_THRESHOLD_ (``UNTRIMMED``)."""
    import dask
    from distributed import Client, LocalCluster

    kind, value = parse_spec(spec)
    if kind == "address":
        with Client(value) as client:
            yield client
        return
    with dask.config.set(UNTRIMMED), LocalCluster(
            n_workers=value, threads_per_worker=1, processes=True,
            dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def for_workers(tree, client):
    """The tree as the workers get it: walk threads set to a worker's own threads, so that
    workers sharing a machine do not oversubscribe its cores."""
    threads = min(client.nthreads().values() or [1])
    runtime = dataclasses.replace(tree.runtime, threads=threads)
    return dataclasses.replace(tree, runtime=runtime)


def on_cluster(preset, workload, m, client):
    """Run the queries of measurement ``m`` (bench.Measurement) again on the cluster, once per
    run of ``m`` on its last tree, and make the cluster's results and reports those of ``m``.
    Returns the record of the cluster: workers, bytes each holds, query times and the
    speed-up over the local queries of ``m``."""
    from covertreex.distributed import knn_report, scatter_tree, trimmed_workers

    info = client.scheduler_info()
    tree = m.tree
    local_ms = [r.query_wall_ms for r in m.query_reports]
    shipped = for_workers(tree, client)
    start = time.perf_counter()
    future = scatter_tree(client, shipped)
    scatter_ms = (time.perf_counter() - start) * 1e3
    nbytes = client.run(_stored_bytes, future.key)
    trimmed = trimmed_workers(client)
    results, reports = [], []
    try:
        # Each worker process loads the compiled kernels on its first call: not timed.
        warm = _one_query(preset, workload, tree)
        if warm is not None:
            knn_report(shipped, warm, preset.k, client=client, tree_future=future,
                       predecessor_mode=preset.predecessor_mode)
        for _ in local_ms:
            idx, dist, report = knn_report(shipped, workload.knn_queries, preset.k, client=client,
                                           predecessor_mode=preset.predecessor_mode,
                                           tree_future=future)
            results.append((idx, dist))
            reports.append(report)
    finally:
        client.cancel([future])
    m.results[:], m.query_reports[:] = results, reports
    cluster_ms = min(r.query_wall_ms for r in reports)
    record = {
        "workers": sorted(info["workers"]),
        "threads_per_worker": sorted(set(client.nthreads().values())),
        "bytes_per_worker": {w: int(b) for w, b in sorted(nbytes.items())},
        # None where unset (see UNTRIMMED): a value here explains a slow cluster.
        "malloc_trim_threshold": {w: trimmed.get(w) for w in sorted(info["workers"])},
        "scatter_ms": scatter_ms,
        "cluster_query_ms": [r.query_wall_ms for r in reports],
        "local_query_ms": local_ms,
        "query_speedup_vs_local": min(local_ms) / cluster_ms if cluster_ms > 0 else None,
        "local_threads": tree.runtime.plan.walk.workers or tree.runtime.plan.guard.numba_threads,
    }
    return record


def _one_query(preset, workload, tree):
    """One query of the preset's kind (a dataset id, or a point), or None where a single
    query cannot stand for the preset's (Euclidean queries=None, every fitted point)."""
    import numpy as np

    if preset.is_residual:
        return np.array([tree.n - 1], dtype=np.int64)
    queries = workload.knn_queries
    return None if queries is None else queries[:1]


def _stored_bytes(key, dask_worker=None) -> int:
    """On a worker: the size Dask accounts for the scattered tree (0 where it is not held)."""
    from dask.sizeof import sizeof

    import covertreex.distributed  # noqa: F401  (registers the tree's size with sizeof)

    data = dask_worker.data
    return int(sizeof(data[key])) if key in data else 0
