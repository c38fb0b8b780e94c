"""The tree's Numba kernels, compiled for one metric.

The build scans, kNN walks and conflict kernels are written once, as templates in their
kernel modules, calling ``pair`` (a metric's pair kernel) or ``tile_kernel``. ``specialise``
compiles a copy of each template whose ``pair`` or ``tile_kernel`` is the metric's own, a
global constant of that copy. Passing the kernel as an argument would cost a call through a
pointer per distance and could not be cached: Numba refuses to cache a function that embeds a
function pointer, so it would compile again in every process. The copies are named after
their metric (``knn_pointwise[euclidean]``), which keeps their on-disk caches apart.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..insert import conflict_kernels, scan_kernels
from ..query import knn_kernels
from . import walk_kernels

_PAIR = ("pair",)
_PAIR_AND_KEY = ("pair", "pair_key", "key_to_distance", "distance_to_key")
# template, its Numba options, and the metric kernels it calls.
_TEMPLATES = {
    "scan_pointwise": (scan_kernels.scan_pointwise, dict(parallel=True), _PAIR_AND_KEY),
    "knn_pointwise": (knn_kernels.knn_pointwise, dict(parallel=True), _PAIR_AND_KEY),
    "walk_block": (walk_kernels.walk_block_kernel, {}, ("tile_kernel",)),
    "pairwise_by_pairs": (conflict_kernels.pairwise_by_pairs, dict(parallel=True), _PAIR),
    "grow_radii": (conflict_kernels.grow_radii, {}, _PAIR),
}


# The ``active`` mask of a tile kernel call that wants every pair (see walk_kernels).
ALL_PAIRS = np.zeros((0, 0), dtype=np.bool_)


@njit(nogil=True, inline="always")
def same_value(d):
    """The key of a metric whose pair kernel is its own key: distances unchanged."""
    return d


@dataclass(frozen=True)
class MetricKernels:
    """One metric's compiled-on-demand kernels (Numba dispatchers); see the templates."""

    scan_pointwise: object
    knn_pointwise: object
    walk_block: object
    pairwise_by_pairs: object
    grow_radii: object


def _compile(template, options: dict, bindings: dict, tag: str):
    namespace = dict(template.__globals__)
    namespace.update(bindings)
    func = types.FunctionType(template.__code__, namespace, template.__name__,
                              template.__defaults__, template.__closure__)
    func.__qualname__ = f"{template.__qualname__}[{tag}]"
    func.__module__ = template.__module__
    func.__doc__ = template.__doc__
    return njit(cache=True, nogil=True, **options)(func)


def specialise(tag: str, pair, tile_kernel, pair_key=None, key_to_distance=same_value,
               distance_to_key=same_value) -> MetricKernels:
    """The tree's kernels for the metric named ``tag``, given its pair kernel
    ``pair(qdata, i, tdata, j)`` and its tile kernel (see ``covertreex.engine.walk_kernels``).

    Scans of whole subtrees compare a cheaper key instead of the distance (pynndescent's
    squared distances): ``pair_key`` (default ``pair``) must be monotone in the distance,
    ``key_to_distance(pair_key(...))`` must equal ``pair(...)`` bit for bit, and
    ``distance_to_key(d)`` must be at least the key of every pair whose distance is <= d.
    """
    bound = {"pair": pair, "tile_kernel": tile_kernel, "pair_key": pair_key or pair,
             "key_to_distance": key_to_distance, "distance_to_key": distance_to_key}
    return MetricKernels(**{
        name: _compile(template, options, {slot: bound[slot] for slot in slots}, tag)
        for name, (template, options, slots) in _TEMPLATES.items()
    })
