"""The tree's Numba kernels, compiled for one metric.

The build scans, kNN walks and conflict kernels are written once, as templates in their
kernel modules, calling ``pair`` (a metric's pair kernel), its key functions or
``tile_kernel``. ``specialise`` compiles a copy of a template whose names are bound to one
metric's kernels, global constants of that copy. Passing the kernel as an argument would
cost a call through a pointer per distance and could not be cached: Numba refuses to cache
a function that embeds a function pointer, so it would compile again in every process. The
copies are named after their metric (``knn_pointwise[euclidean]``), which keeps their
on-disk caches apart. Each layer specialises its own templates, so this module imports
none of them.
"""

from __future__ import annotations

import functools
import types

from numba import njit


def template(parallel: bool = False):
    """Mark a function as a template for ``specialise``, compiled with Numba's
    ``parallel`` option (a template with a prange loop needs it)."""
    def mark(func):
        func.specialise_options = {"parallel": bool(parallel)}
        return func
    return mark


def is_template(obj) -> bool:
    return callable(obj) and hasattr(obj, "specialise_options")


@functools.cache
def specialise(tmpl, kernels):
    """``tmpl`` (a function marked by ``template()``) compiled with the names it calls bound to
    ``kernels`` (a ``metrics.protocol.MetricKernels``); one dispatcher per (template,
    kernels), so every caller, the profiling suite included, gets the same one."""
    namespace = dict(tmpl.__globals__)
    namespace.update(kernels.bindings())
    func = types.FunctionType(tmpl.__code__, namespace, tmpl.__name__,
                              tmpl.__defaults__, tmpl.__closure__)
    func.__qualname__ = f"{tmpl.__qualname__}[{kernels.tag}]"
    func.__module__ = tmpl.__module__
    func.__doc__ = tmpl.__doc__
    return njit(cache=True, nogil=True, **tmpl.specialise_options)(func)
