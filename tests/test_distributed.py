"""covertreex.distributed on a two-process LocalCluster: answers identical to the local tree's,
distances bit for bit, for every query path; a worker killed mid-run either changes nothing or
ends in an error naming it, never in a partial result; the core imports no dask."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed "
                                  "(pip install 'covertreex[dask]')")
import dask  # noqa: E402

from covertreex import CoverTree, Runtime  # noqa: E402
from covertreex import distributed as cd  # noqa: E402

from conftest import gaussian, rbf_backend  # noqa: E402

K = 9
TRIM_KEY = f"distributed.nanny.pre-spawn-environ.{cd.TRIM_VARIABLE}"


@contextlib.contextmanager
def local_cluster(workers: int = 2, trim=None):
    """A LocalCluster of single-threaded worker processes whose MALLOC_TRIM_THRESHOLD_ is
    ``trim`` (None: unset, as docs/distributed.md advises). The setting holds while the
    cluster lives: nannies read it when they start, which may come later, as when a killed
    worker is restarted."""
    with dask.config.set({TRIM_KEY: trim}), distributed.LocalCluster(
            n_workers=workers, processes=True, threads_per_worker=1,
            dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client():
    with local_cluster() as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def points():
    return gaussian(1500, 3, seed=41)


@pytest.fixture(scope="module")
def trees(points):
    return {
        "residual": CoverTree(Runtime(metric="residual_correlation", query_block=64)).fit(
            rbf_backend(points, 64)),
        # Predecessor rows up to id 700 scanned, the rest walked (Runtime.query_brute).
        "residual-mixed": CoverTree(Runtime(metric="residual_correlation", query_block=64,
                                            query_brute=700)).fit(rbf_backend(points, 64)),
        "pointwise": CoverTree(Runtime()).fit(points),
        "blocked": CoverTree(Runtime(traversal="blocked", query_block=64)).fit(points),
    }


def assert_identical(local, remote):
    np.testing.assert_array_equal(local[0], remote[0])
    np.testing.assert_array_equal(local[1].view(np.int64), remote[1].view(np.int64))


CASES = [
    ("residual", None, False),
    ("residual", None, True),
    ("residual", "ids", False),
    ("residual", "ids", True),
    ("residual-mixed", None, True),
    ("residual-mixed", "ids", True),
    ("pointwise", "fresh", False),
    ("pointwise", None, False),
    ("pointwise", None, True),
    ("blocked", "fresh", False),
    ("blocked", None, False),
    ("blocked", None, True),
]


def _queries(kind, tree):
    if kind == "ids":  # unordered, repeated ids
        return np.random.default_rng(3).integers(0, tree.n, 700)
    if kind == "fresh":
        return gaussian(700, 3, seed=42)
    return None


@pytest.mark.parametrize("block_rows", [None, 100])
@pytest.mark.parametrize("case, kind, predecessor_mode", CASES)
def test_identical_to_local(client, trees, case, kind, predecessor_mode, block_rows):
    tree = trees[case]
    queries = _queries(kind, tree)
    local = tree.knn(queries, K, return_distances=True, predecessor_mode=predecessor_mode)
    remote = cd.knn(tree, queries, K, client=client, return_distances=True,
                    predecessor_mode=predecessor_mode, block_rows=block_rows)
    assert_identical(local, remote)
    assert isinstance(cd.knn(tree, queries, K, client=client, block_rows=block_rows,
                             predecessor_mode=predecessor_mode), np.ndarray)


def test_report_merges_blocks_and_reuses_a_scattered_tree(client, trees):
    tree = trees["residual"]
    future = cd.scatter_tree(client, tree)
    # Each worker's memory accounting sees the whole tree (V alone), not a small Python object.
    held = client.run(lambda dask_worker: dask_worker.state.nbytes)
    assert all(b >= tree.metric.data.v.nbytes for b in held.values()), held
    try:
        idx, dist, report, blocks = cd.knn_report(tree, None, K, client=client, block_rows=200,
                                                  tree_future=future, return_blocks=True)
        again = cd.knn_report(tree, None, K, client=client, tree_future=future)
    finally:
        client.cancel([future])
    local_idx, local_dist, local_report = tree.knn_report(None, K)
    assert_identical((local_idx, local_dist), (idx, dist))
    assert_identical((local_idx, local_dist), again[:2])
    # 200 rows round up to 256, a multiple of query_block=64: ceil(1500 / 256) blocks.
    assert len(blocks) == 6 and [b.queries for b in blocks] == [256] * 5 + [220]
    assert report.queries == tree.n and report.k == K and report.metric == local_report.metric
    assert report.pairs_evaluated == sum(b.pairs_evaluated for b in blocks)
    # The same blocks as the local run, so the same tiles and pair counts.
    assert report.pairs_evaluated == local_report.pairs_evaluated
    assert report.whitened_block_pairs == local_report.whitened_block_pairs


def test_arguments_are_checked_before_anything_runs(client, trees):
    tree = trees["pointwise"]
    with pytest.raises(ValueError, match="predecessor_mode=True needs queries=None"):
        cd.knn(tree, gaussian(5, 3), K, client=client, predecessor_mode=True)
    with pytest.raises(TypeError, match="k must be a positive integer"):
        cd.knn(tree, None, 2.5, client=client)
    with pytest.raises(ValueError, match="block_rows must be a positive integer"):
        cd.knn(tree, None, K, client=client, block_rows=0)
    with pytest.raises(ValueError, match="not fitted"):
        cd.knn(CoverTree(Runtime()), None, K, client=client)


def test_core_imports_no_dask():
    code = ("import sys, covertreex, covertreex.persist; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_killed_worker_never_gives_a_partial_result():
    """Kill one of two worker processes while the run's blocks are being computed: the run must
    finish with the local answers (Dask reruns the lost blocks on the other worker and the
    restarted one) or raise DistributedKnnError naming the lost worker."""
    tree = CoverTree(Runtime(metric="residual_correlation", query_block=32)).fit(
        rbf_backend(gaussian(4000, 3, seed=43), 128))
    local = tree.knn(None, 30, return_distances=True)
    with local_cluster() as cluster, distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        outcome = {}

        def run():
            try:
                outcome["result"] = cd.knn(tree, None, 30, client=client, block_rows=32,
                                           return_distances=True)
            except Exception as exc:  # noqa: BLE001 - inspected below
                outcome["error"] = exc

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        victim = _wait_for_busy_worker(client, runner, timeout=60)
        assert victim is not None, "the run ended before a worker was seen computing a block"
        os.kill(pids[victim], signal.SIGKILL)
        runner.join(timeout=120)
        assert not runner.is_alive(), "the distributed run did not end within 120 s"
    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, cd.DistributedKnnError), repr(error)
        assert victim in str(error) or "KilledWorker" in str(error), str(error)
    else:
        assert_identical(local, outcome["result"])


def _wait_for_busy_worker(client, runner, timeout):
    """Address of a worker computing one of the run's blocks after at least one block is done,
    or None if the run ends first."""
    deadline = time.monotonic() + timeout
    while runner.is_alive() and time.monotonic() < deadline:
        done = client.run_on_scheduler(_finished_knn_tasks)
        busy = [w for w, keys in client.processing().items()
                if any(str(key).startswith("covertreex-knn-") for key in keys)]
        if done >= 1 and busy:
            return busy[0]
        time.sleep(0.01)
    return None


def _finished_knn_tasks(dask_scheduler=None):
    return sum(1 for key, ts in dask_scheduler.tasks.items()
               if str(key).startswith("covertreex-knn-") and ts.state == "memory")


def test_scatter_warns_of_workers_that_run_with_dasks_trim_threshold(trees, client, monkeypatch):
    tree = trees["blocked"]
    # A nanny also sets its pre-spawn variables in the process that starts it, and later
    # clusters here would inherit them: setenv puts this process's environment back afterwards.
    monkeypatch.setenv(cd.TRIM_VARIABLE, "65536")
    assert cd.trimmed_workers(client) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", cd.WorkerMemoryWarning)
        client.cancel([cd.scatter_tree(client, tree)])
    # Dask's own default for the workers its nannies start.
    with local_cluster(1, trim=65536) as cluster, distributed.Client(cluster) as trimmed:
        assert list(cd.trimmed_workers(trimmed).values()) == ["65536"]
        with pytest.warns(cd.WorkerMemoryWarning, match=r"1 worker\(s\) run with "
                          r"MALLOC_TRIM_THRESHOLD_ set .*pre-spawn-environ"):
            future = cd.scatter_tree(trimmed, tree)
        # The warning changes nothing else: the run answers as the local tree does.
        remote = cd.knn(tree, tree._coords[:40], K, client=trimmed, tree_future=future,
                        return_distances=True)
        assert_identical(tree.knn(tree._coords[:40], K, return_distances=True), remote)
