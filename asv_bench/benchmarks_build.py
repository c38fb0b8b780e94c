"""Tree build and kNN queries on the named workloads, both metrics.

Profile quick (default): residual `quick` (n=4096, d=3, 256 inducing, 256 query ids, k=50) and
Euclidean `euclid-32k@n=8192` (euclid-32k scaled to 8192 points, 1024 fresh queries, k=8).
Profile gold (COVERTREEX_ASV_PROFILE=gold): gold-d3, gold-d8 and euclid-32k.

Setup loads the workload (the residual backend V, p is built there, outside the timing) and
compiles the Numba kernels on a small copy, so time_* measure warm code; the cold start with
compilation is benchmarks_cold_start.
"""

from __future__ import annotations

from . import _common as c

PRESETS = c.RESIDUAL_PRESETS + c.EUCLIDEAN_PRESETS


class _PresetSuite:
    """What both suites share: one parameter, the preset; one call per sample and no warm-up
    samples (setup warms Numba up)."""

    params = [PRESETS]
    param_names = ["preset"]
    number = 1
    rounds = 1
    warmup_time = 0
    timeout = 1800 if c.GOLD else 300


class Build(_PresetSuite):
    """CoverTree(Runtime(metric)).fit(data): wall time and peak memory of the process."""

    repeat = (1, 3, 300.0) if c.GOLD else (2, 5, 20.0)

    def setup(self, preset):
        covertreex = c.require("", "CoverTree")
        # Compile in a child, then load the cached kernels here: this process never holds
        # the compiler's memory, whether the Numba cache was cold or warm.
        c.warm_up_in_child(preset)
        self.workload = c.workload(preset)
        self.runtime = c.runtime(preset)
        self.cover_tree = covertreex.CoverTree
        c.warm_up(preset)

    def time_build(self, preset):
        self.cover_tree(self.runtime).fit(self.workload.fit_input)

    def peakmem_build(self, preset):
        # Peak RSS of a process holding the imports, the workload (loaded in setup) and the
        # cached kernels, and fitting once; asv takes it in several processes (rounds).
        self.cover_tree(self.runtime).fit(self.workload.fit_input)


class Knn(_PresetSuite):
    """tree.knn(queries, k) on a tree built in setup: residual query ids, Euclidean fresh points."""

    repeat = (2, 5, 120.0) if c.GOLD else (3, 10, 10.0)

    def setup(self, preset):
        covertreex = c.require("", "CoverTree")
        self.workload = c.workload(preset)
        p = self.workload.preset
        c.warm_up(preset)
        self.tree = covertreex.CoverTree(c.runtime(preset)).fit(self.workload.fit_input)
        self.k = p.k
        self.predecessor_mode = p.predecessor_mode

    def time_knn(self, preset):
        self.tree.knn(self.workload.knn_queries, self.k, predecessor_mode=self.predecessor_mode)
