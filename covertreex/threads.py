"""Thread guardrails (audit phase 7): BLAS/OpenMP and Numba thread counts.

``configure_threading`` sets process-wide defaults for entry points such as the CLI;
``thread_limits`` pins the counts around one build or query and restores them after.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numba
from threadpoolctl import threadpool_limits

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
# Numba reads NUMBA_NUM_THREADS again at every compilation and refuses a value that differs
# from its running pool, so the guard sets Numba's count through numba.set_num_threads only.
_WRITABLE_ENV = THREAD_ENV[:3]


def default_threads() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# BLAS and OpenMP get one thread under the guard, as the audit plan's phase 7 prescribes:
# the residual tiles are small GEMMs (about 256 x 512 x 300) between Numba loops, and two
# OpenBLAS threads made the quick build 3-4x slower and unsteady on this 2-core machine
# (covertreex bench --preset quick --repeat 3: 450-680 ms with BLAS on 2 threads, 159-164 ms
# with BLAS on 1 and Numba on 2). Numba's own parallel loops keep the cores.
GUARD_BLAS_THREADS = 1


def configure_threading(max_threads: int | None = None) -> dict[str, int]:
    """Pin BLAS/OpenMP to one thread (through threadpoolctl) and Numba to ``max_threads``
    (default: the cores available).

    A variable of THREAD_ENV that the user already set is never overridden: its value is
    used for its library. The defaults that were applied are named in one warning.
    Returns {variable: threads in force}.
    """
    threads = int(max_threads) if max_threads is not None else default_threads()
    if threads <= 0:
        raise ValueError(f"max_threads must be a positive integer, got {max_threads}")
    applied, in_force = [], {}
    for key in THREAD_ENV:
        if key in os.environ:
            in_force[key] = int(os.environ[key])
            continue
        value = threads if key == "NUMBA_NUM_THREADS" else GUARD_BLAS_THREADS
        if key in _WRITABLE_ENV:
            os.environ[key] = str(value)
        in_force[key] = value
        applied.append(f"{key}={value}")
    blas = min(in_force["OPENBLAS_NUM_THREADS"], in_force["MKL_NUM_THREADS"])
    threadpool_limits(limits=blas, user_api="blas")
    threadpool_limits(limits=in_force["OMP_NUM_THREADS"], user_api="openmp")
    numba.set_num_threads(min(in_force["NUMBA_NUM_THREADS"], numba.config.NUMBA_NUM_THREADS))
    if applied:
        warnings.warn(
            f"covertreex thread guard applied {', '.join(applied)}; set these environment "
            "variables yourself to choose other counts",
            RuntimeWarning,
            stacklevel=2,
        )
    return in_force


@contextlib.contextmanager
def thread_limits(threads: int | None, enabled: bool = True):
    """Within the block, BLAS/OpenMP use one thread and Numba ``threads`` (default: cores),
    unless the user pinned them through the environment; restored on exit."""
    if not enabled:
        yield
        return
    threads = threads or default_threads()
    blas = {key: int(os.environ[key]) for key in THREAD_ENV[:3] if key in os.environ}
    limit = min(blas.values()) if blas else GUARD_BLAS_THREADS
    previous = numba.get_num_threads()
    numba_threads = int(os.environ.get("NUMBA_NUM_THREADS", threads))
    numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=limit):
            yield
    finally:
        numba.set_num_threads(previous)
