"""Progress reporting: the harness's ``Progress`` line (rewritten on a terminal with an ETA,
throttled, silent elsewhere) and the index's progress callbacks (``knn_report``/``knn``,
``build_residual_backend``, ``covertreex.distributed.knn_report``): called in the calling
thread with increasing counts ending at the total, checked like ``fit``'s, and without any
effect on the results."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from scipy.linalg import cho_factor, solve_triangular
from threadpoolctl import threadpool_limits

from covertreex import CoverTree, Runtime, build_residual_backend
from covertreex.kernels import RBF, Matern52
from covertreex.metrics.residual.backend import P_FLOOR
from covertreex.query import knn as knn_module
from covertreex_bench import progress as progress_module
from covertreex_bench.progress import Progress

from conftest import gaussian, rbf_backend

REWRITE = "\r\x1b[K"


class Clock:
    """A perf_counter that moves only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", fake)
    return fake


# --- the Progress line ----------------------------------------------------------------------------


def test_terminal_line_is_rewritten_with_elapsed_time_and_eta(clock):
    stream = io.StringIO()
    bar = Progress("build quick", unit="points", stream=stream, tty=True)
    clock.now += 1.0
    bar(0, 4096)
    clock.now += 1.0
    bar(1024, 4096)
    clock.now += 2.0
    bar(4096, 4096)
    draws = stream.getvalue().split(REWRITE)[1:]
    assert draws == [
        "build quick: 0/4096 points (  0%), 00:01 elapsed, ETA -",
        "build quick: 1024/4096 points ( 25%), 00:02 elapsed, ETA 00:06",
        "build quick: 4096/4096 points (100%), 00:04 elapsed, ETA 00:00\n",
    ]


def test_nothing_is_written_when_the_stream_is_not_a_terminal():
    stream = io.StringIO()
    with Progress("queries", stream=stream) as bar:
        assert bar.tty is False
        for done in range(0, 5001, 250):
            bar(done, 5000)
    assert stream.getvalue() == ""


def test_redraws_are_throttled_and_the_last_one_always_shown(clock):
    stream = io.StringIO()
    bar = Progress("queries", stream=stream, tty=True)
    for done in range(1, 1000):  # one call per block, a millisecond apart
        clock.now += 0.001
        bar(done, 1000)
    assert stream.getvalue().count(REWRITE) == 10
    bar(1000, 1000)
    text = stream.getvalue()
    assert text.count(REWRITE) == 11
    assert text.split(REWRITE)[-1].startswith("queries: 1000/1000 rows")
    assert text.endswith("\n") and text.count("\n") == 1


def test_close_ends_an_open_line_once_with_the_latest_counts(clock):
    stream = io.StringIO()
    with Progress("reference", stream=stream, tty=True) as bar:
        bar(10, 100)
        clock.now += 0.01
        bar(20, 100)  # within the redraw interval: not drawn, but close shows it
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("20/100 rows ( 20%), 00:00 elapsed, ETA 00:00\n")
    stream = io.StringIO()
    Progress("unused", stream=stream, tty=True).close()
    assert stream.getvalue() == ""


def test_long_phases_show_hours():
    bar = Progress("build", tty=False)
    assert bar.line(1, 2, 3725.0).endswith("1:02:05 elapsed, ETA 1:02:05")


# --- the index's callbacks ------------------------------------------------------------------------


class Recorder:
    """A progress callable that keeps its calls and the threads they came from."""

    def __init__(self):
        self.calls = []
        self.threads = set()

    def __call__(self, done, total):
        self.calls.append((done, total))
        self.threads.add(threading.get_ident())

    def check(self, total):
        done = [d for d, _ in self.calls]
        assert done == sorted(set(done)) and done[-1] == total and done[0] > 0
        assert {t for _, t in self.calls} == {total}
        assert self.threads == {threading.get_ident()}


def _same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1].view(np.int64), b[1].view(np.int64))


EUCLIDEAN_TREES = [("pointwise", 2), ("blocked", 1), ("blocked", 2)]


@pytest.mark.parametrize("traversal, threads", EUCLIDEAN_TREES)
@pytest.mark.parametrize("queries", ["fresh", None])
def test_euclidean_knn_reports_rows_and_answers_the_same(traversal, threads, queries,
                                                         monkeypatch):
    # The smallest pointwise slices, one chunk of rows per thread each: the most cuts.
    monkeypatch.setattr(knn_module, "SLICE_SECONDS", 0.0)
    points = gaussian(600, 3, seed=5)
    tree = CoverTree(Runtime(traversal=traversal, query_block=64, threads=threads)).fit(points)
    queries = gaussian(450, 3, seed=6) if queries == "fresh" else None
    q = 450 if queries is not None else 600
    record = Recorder()
    with_progress = tree.knn_report(queries, 7, progress=record)
    record.check(q)
    assert len(record.calls) >= 8  # the count moves during the run, not only at its end
    _same(with_progress, tree.knn_report(queries, 7))
    assert tree.knn(queries, 7, progress=Recorder()).tolist() == with_progress[0].tolist()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("predecessor_mode", [False, True])
def test_residual_knn_reports_blocks_and_answers_the_same(threads, predecessor_mode):
    backend = rbf_backend(gaussian(500, 3, seed=3), 64)
    tree = CoverTree(Runtime(metric="residual_correlation", query_block=64,
                             threads=threads)).fit(backend)
    record = Recorder()
    with_progress = tree.knn_report(None, 5, predecessor_mode=predecessor_mode, progress=record)
    record.check(500)
    assert len(record.calls) == 8  # one per block of 64 rows
    _same(with_progress, tree.knn_report(None, 5, predecessor_mode=predecessor_mode))


def test_pointwise_slices_grow_to_a_fraction_of_a_second():
    points = gaussian(3000, 3, seed=9)
    tree = CoverTree(Runtime(traversal="pointwise")).fit(points)
    record = Recorder()
    tree.knn(None, 5, progress=record)
    record.check(3000)
    done = [0] + [d for d, _ in record.calls]
    sizes = np.diff(done)[:-1]  # the last slice is what is left
    assert (sizes[1:] <= knn_module.SLICE_GROWTH * sizes[:-1]).all()


def test_an_error_in_the_callback_stops_the_run_and_propagates():
    tree = CoverTree(Runtime(traversal="blocked", query_block=32, threads=2)).fit(gaussian(400, 2))

    def fail(done, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        tree.knn_report(None, 3, progress=fail)


def test_progress_must_be_callable():
    points = gaussian(100, 2)
    tree = CoverTree().fit(points)
    for call in (lambda: tree.knn(None, 3, progress=1),
                 lambda: tree.knn_report(points, 3, progress="bar"),
                 lambda: CoverTree().fit(points, progress=True),
                 lambda: build_residual_backend(points, inducing_count=10, progress=object())):
        with pytest.raises(TypeError, match="progress must be a callable"):
            call()


def _unchunked(coords, kernel, m, seed=42, jitter=1e-6):
    """V and p as build_residual_backend computed them before V was solved in chunks."""
    n = coords.shape[0]
    inducing = np.sort(np.random.default_rng(seed + 1).choice(n, m, replace=False))
    u = coords[inducing]
    kmm = kernel(u, u)
    kmm[np.diag_indices_from(kmm)] += jitter * kernel.variance
    chol, _ = cho_factor(kmm, lower=True, check_finite=False)
    v = solve_triangular(chol, kernel(u, coords), lower=True, check_finite=False).T
    return v, np.maximum(kernel.diag(coords) - np.einsum("ij,ij->i", v, v), P_FLOOR)


@pytest.mark.parametrize("n, m, kernel", [
    (777, 64, RBF(lengthscale=1.3, variance=0.5)),
    (3001, 128, Matern52(lengthscale=(0.5, 1.0, 2.0), variance=2.0)),
    (40, 40, RBF()),
])
def test_backend_reports_points_and_keeps_every_bit(n, m, kernel):
    coords = gaussian(n, 3, seed=n)
    record = Recorder()
    # One BLAS thread: a threaded solve splits the columns among threads where the split
    # falls, so only single-threaded bits are a fixed function of the inputs.
    with threadpool_limits(1):
        backend = build_residual_backend(coords, kernel, inducing_count=m, progress=record)
        v, p = _unchunked(coords, kernel, m)
    record.check(n)
    np.testing.assert_array_equal(backend.v_matrix, v)
    np.testing.assert_array_equal(backend.p_diag, p)
    plain = build_residual_backend(coords, kernel, inducing_count=m)
    np.testing.assert_array_equal(plain.v_matrix, build_residual_backend(
        coords, kernel, inducing_count=m, progress=Recorder()).v_matrix)


def test_distributed_knn_reports_gathered_blocks():
    distributed = pytest.importorskip("distributed")
    from covertreex import distributed as cd

    tree = CoverTree(Runtime(traversal="blocked", query_block=32)).fit(gaussian(300, 2, seed=8))
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=":0") as client:
        record = Recorder()
        idx, dist, _ = cd.knn_report(tree, None, 4, client=client, block_rows=64, progress=record)
        with pytest.raises(TypeError, match="progress must be a callable"):
            cd.knn(tree, None, 4, client=client, progress=3)
    record.check(300)
    assert len(record.calls) == 5
    _same((idx, dist), tree.knn_report(None, 4))
