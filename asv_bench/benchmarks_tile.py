"""Micro-benchmark of one residual distance tile: ResidualMetric.tile for 512 x 8192 ids.

A tile is ``V_rows V_cols^T`` (GEMM, or a dot product per pair when phase 1 is off), the kernel
tile (GEMM on cached norms, or a broadcast difference tensor when phase 2 is off) and the fused
correlation / square-root pass. Its floor is the float64 GEMM of the same shape,
(512 x m) @ (m x 8192): track_tile_over_gemm is tile time / GEMM time, measured interleaved in
one call, so it cancels most machine drift (lower is better, 1.0 would be GEMM speed).
time_gemm_f64 times that GEMM alone on random data, independent of covertreex: when it moves,
the machine moved, not the code.

Profile quick: `quick` scaled to 8192 points (d=3, 256 inducing); gold: `gold-d3` (512 inducing).
"""

from __future__ import annotations

import time

import numpy as np

from . import _common as c

ROWS = 512
COLS = 8192
RATIO_RUNS = 7
PHASE_SETS = ["all", "baseline"]


def _ids(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)).astype(np.int64)


def _tile_settings(flags):
    """What this commit's ResidualMetric takes: the TilePlan that Runtime resolves the phase
    flags into, or the flags themselves in commits before Runtime had plans."""
    try:
        runtime_mod = c.require("runtime", "Runtime")
        return runtime_mod.Runtime(metric="residual_correlation", phases=flags).plan.tiles
    except (NotImplementedError, AttributeError, TypeError):
        return flags


class ResidualTile:
    params = [[c.TILE_PRESET], PHASE_SETS]
    param_names = ["preset", "phases"]
    number = 1
    rounds = 1
    warmup_time = 0
    repeat = (5, 20, 10.0)
    timeout = 600 if c.GOLD else 300

    def setup(self, preset, phases):
        phases_mod = c.require("phases", "Phases")
        metric_mod = c.require("metrics.residual.metric", "ResidualMetric")
        w = c.workload(preset)
        if w.backend is None or w.preset.n < COLS:
            raise NotImplementedError(f"preset {preset!r} has no residual backend with >= {COLS} points")
        flags = phases_mod.Phases.parse(phases)
        try:
            self.metric = metric_mod.ResidualMetric(w.backend, _tile_settings(flags))
        except TypeError as exc:  # an older signature without phases
            raise NotImplementedError(f"ResidualMetric(backend, phases) unsupported: {exc}") from None
        n = w.preset.n
        self.rows = _ids(n, ROWS, 1)
        self.cols = _ids(n, COLS, 2)
        v = np.asarray(w.backend.v_matrix, dtype=np.float64)
        self.a = np.ascontiguousarray(v[self.rows])
        self.b = np.ascontiguousarray(v[self.cols])
        self.out = np.empty((ROWS, COLS))
        # Compile the tile kernels (and touch the BLAS) outside the timing.
        self.metric.tile(self.metric.data, self.rows[:8], self.cols[:64])
        self._gemm()

    def _tile(self):
        return self.metric.tile(self.metric.data, self.rows, self.cols)

    def _gemm(self):
        return np.matmul(self.a, self.b.T, out=self.out)

    def time_tile(self, preset, phases):
        self._tile()

    def track_tile_over_gemm(self, preset, phases):
        tile, gemm = [], []
        for _ in range(RATIO_RUNS):
            t0 = time.perf_counter()
            self._tile()
            t1 = time.perf_counter()
            self._gemm()
            t2 = time.perf_counter()
            tile.append(t1 - t0)
            gemm.append(t2 - t1)
        return c.median(tile) / c.median(gemm)

    track_tile_over_gemm.unit = "x GEMM time"


class ResidualTileKernel(ResidualTile):
    """The same 512 x 8192 tile through ``residual_tile_kernel``, the nopython tile that the
    phase-6 walks run (all phases; columns in chunks through a per-thread workspace).

    track_tile_over_gemm is again tile time / GEMM time; its inverse is the tile's share of
    GEMM throughput (issue 4 asks for at least 50 %, a ratio of at most 2.0). Commits without
    ``ResidualMetric.workspace`` skip it.
    """

    params = [[c.TILE_PRESET], ["all"]]

    def setup(self, preset, phases):
        super().setup(preset, phases)
        if not hasattr(self.metric, "workspace"):
            raise NotImplementedError("this commit has no tile workspace (ResidualMetric.workspace)")
        # Later commits hold the tile kernel in the metric's MetricKernels.
        kernels = getattr(self.metric, "kernels", None)
        self.kernel = getattr(kernels, "tile_kernel", None) or type(self.metric).tile_kernel
        self.workspace = self.metric.workspace(ROWS)
        self.every = np.zeros((0, 0), dtype=np.bool_)  # empty mask: every pair
        # +inf pruning thresholds: an exact tile, as with float32 staging off.
        self.thresholds = (np.full(ROWS, np.inf), np.full(COLS, np.inf))
        self.no_telemetry = np.zeros(0)
        try:
            self._tile()
        except TypeError as exc:  # a commit whose tile kernel takes no thresholds
            raise NotImplementedError(f"tile kernel signature differs: {exc}") from None

    def _tile(self):
        return self.kernel(self.metric.data, self.metric.data, self.rows, self.cols, self.every,
                           *self.thresholds, self.workspace, self.no_telemetry)


class GemmReference:
    """Plain float64 GEMM (512 x m) @ (m x 8192) on random data: the machine's yardstick."""

    params = [[c.TILE_PRESET]]
    param_names = ["preset"]
    number = 1
    rounds = 1
    warmup_time = 0
    repeat = (5, 20, 5.0)
    timeout = 120

    def setup(self, preset):
        p = c.preset(preset)
        if p.inducing is None:
            raise NotImplementedError(f"preset {preset!r} has no inducing points")
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((ROWS, p.inducing))
        self.b = rng.standard_normal((COLS, p.inducing))
        self.out = np.empty((ROWS, COLS))
        np.matmul(self.a, self.b.T, out=self.out)

    def time_gemm_f64(self, preset):
        np.matmul(self.a, self.b.T, out=self.out)
