"""Thread guard (audit phase thread_guard): BLAS/OpenMP and Numba thread counts.

``thread_limits`` pins the counts around one build or query and restores them after;
``configure_threading`` sets them for the whole process, for entry points such as the CLI.
Neither writes the environment: counts go to the libraries through threadpoolctl and
``numba.set_num_threads``.
"""

from __future__ import annotations

import contextlib
import os

import numba
from threadpoolctl import threadpool_limits

# The variables through which a user pins the thread pools of OpenMP, the BLAS libraries and
# Numba; the guard honours the ones that are set (Runtime.from_env, configure_threading).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def default_threads() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _numba_threads(requested: int) -> int:
    # Numba's pool is sized once, from NUMBA_NUM_THREADS or the cores, when it starts.
    return max(1, min(int(requested), numba.config.NUMBA_NUM_THREADS))


def configure_threading(max_threads: int | None = None, blas_threads: int = 1) -> dict[str, int]:
    """Pin BLAS/OpenMP to ``blas_threads`` and Numba to ``max_threads`` (default: the cores
    available) for the rest of the process.

    A variable of THREAD_ENV that the user set is honoured for its library. Returns
    {variable: threads in force} for the four variables.
    """
    threads = default_threads() if max_threads is None else max_threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0:
        raise ValueError(f"max_threads must be a positive integer, got {max_threads!r}")
    in_force = {}
    for key in THREAD_ENV:
        if key in os.environ:
            in_force[key] = int(os.environ[key])
        else:
            in_force[key] = threads if key == "NUMBA_NUM_THREADS" else blas_threads
    threadpool_limits(limits=min(in_force["OPENBLAS_NUM_THREADS"], in_force["MKL_NUM_THREADS"]),
                      user_api="blas")
    threadpool_limits(limits=in_force["OMP_NUM_THREADS"], user_api="openmp")
    numba.set_num_threads(_numba_threads(in_force["NUMBA_NUM_THREADS"]))
    return in_force


@contextlib.contextmanager
def thread_limits(guard):
    """Within the block, BLAS/OpenMP run ``guard.blas_threads`` and Numba
    ``guard.numba_threads`` threads when ``guard.enabled`` (a ``runtime.GuardPlan``);
    restored on exit."""
    if not guard.enabled:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(_numba_threads(guard.numba_threads))
    try:
        with threadpool_limits(limits=guard.blas_threads):
            yield
    finally:
        numba.set_num_threads(previous)
