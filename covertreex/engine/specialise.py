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


@functools.cache
def specialise(template, kernels, parallel: bool = False):
    """``template`` compiled with the names it calls bound to ``kernels`` (a
    ``metrics.protocol.MetricKernels``); one dispatcher per (template, kernels)."""
    namespace = dict(template.__globals__)
    namespace.update(kernels.bindings())
    func = types.FunctionType(template.__code__, namespace, template.__name__,
                              template.__defaults__, template.__closure__)
    func.__qualname__ = f"{template.__qualname__}[{kernels.tag}]"
    func.__module__ = template.__module__
    func.__doc__ = template.__doc__
    return njit(cache=True, nogil=True, parallel=parallel)(func)
