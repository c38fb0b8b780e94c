"""A clock that nopython code can read: the CPU cycle counter (llvm.readcyclecounter).

Numba kernels that must not touch Python (audit phase 6) time their parts in cycles;
``cycles_per_ms`` converts afterwards, calibrated once against time.perf_counter.
"""

import functools
import time

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def read_cycles(typingctx):
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@njit(cache=True, nogil=True)
def cycles_now():
    return read_cycles()


@functools.cache
def cycles_per_ms() -> float:
    """Cycle-counter ticks per millisecond, measured over 20 ms (constant-rate TSC assumed)."""
    cycles_now()
    c0, t0 = cycles_now(), time.perf_counter()
    time.sleep(0.02)
    c1, t1 = cycles_now(), time.perf_counter()
    return (c1 - c0) / ((t1 - t0) * 1e3)
