"""The phase ladder (docs/design.md, "Audit phases", "Telemetry"): build telemetry per cumulative audit phase.

One setup_cache, shared by both classes (asv keys it by module and line), builds the ladder
preset LADDER_REPEATS times per step of ``Phases.ladder()`` (baseline, +1 block_gemm, ...,
+7 thread_guard; Numba warmed up per step on a small copy first), and queries the last tree of
each step. Each track_* returns the median over those builds of one ``BuildReport.summary()``
figure, summed over the batches of a build. asv compares track values by ratio, without
statistics, and takes lower as better: every figure here is a cost (ms, miss rate).

Profile quick: preset `quick`; profile gold: `gold-d3`.
"""

from __future__ import annotations

import math
import sys
import time

from . import _common as c

# BuildReport.summary() key behind each track.
FIGURES = {
    "traversal_ms": "traversal_ms_sum",
    "whitened_block_ms": "whitened_block_ms_sum",
    "kernel_provider_ms": "kernel_provider_ms_sum",
    "conflict_graph_ms": "conflict_graph_ms_sum",
    "build_wall_ms": "build_wall_ms",
    # The audit's Phase 1 gate: median traversal_ms of the dominated batches (<= 150 ms).
    "dominated_traversal_ms": "traversal_ms_median_dominated",
}


def ladder_cache(_benchmark=None):
    """Shared setup_cache (a method of both classes, hence the argument):
    {'preset', 'missing', 'steps': {label: {figure: median, 'knn_ms', 'miss_rate'}}}."""
    out = {"preset": c.LADDER_PRESET, "repeats": c.LADDER_REPEATS, "missing": None,
           "miss_rate_missing": None, "steps": {}}
    try:
        phases_mod = c.require("phases", "Phases")
        covertreex = c.require("", "CoverTree")
        if not hasattr(phases_mod.Phases, "ladder"):
            raise NotImplementedError("covertreex.phases.Phases has no ladder() in this commit")
        if not hasattr(covertreex.CoverTree, "build_report"):
            raise NotImplementedError("CoverTree has no build_report (telemetry) in this commit")
        w = c.workload(c.LADDER_PRESET)
    except NotImplementedError as exc:
        out["missing"] = str(exc)
        return out

    p = w.preset
    ladder = phases_mod.Phases.ladder()
    extra = [label for label, _ in ladder if label not in c.LADDER_LABELS]
    if extra:
        print(f"asv_bench: ladder steps not in LADDER_LABELS, not tracked: {extra}", file=sys.stderr)

    try:
        reference = c.require("reference", "residual_knn", "check_residual_knn")
        ref = reference.residual_knn(w.backend, w.query_ids, p.k, p.predecessor_mode)
    except NotImplementedError as exc:
        reference, ref = None, None
        out["miss_rate_missing"] = str(exc)

    for label, phases in ladder:
        if label not in c.LADDER_LABELS:
            continue
        c.warm_up(c.LADDER_PRESET, phases)
        rt = c.runtime(c.LADDER_PRESET, phases)
        summaries = []
        tree = None
        for _ in range(c.LADDER_REPEATS):
            tree = covertreex.CoverTree(rt).fit(w.fit_input)
            summaries.append(tree.build_report.summary())
        step = {}
        for figure, key in FIGURES.items():
            values = [s.get(key) for s in summaries]
            step[figure] = math.nan if any(v is None for v in values) else c.median(values)
        knn_ms = []
        idx = None
        for _ in range(c.LADDER_REPEATS):
            t0 = time.perf_counter()
            idx = tree.knn(w.knn_queries, p.k, predecessor_mode=p.predecessor_mode)
            knn_ms.append((time.perf_counter() - t0) * 1e3)
        step["knn_ms"] = c.median(knn_ms)
        if reference is not None:
            recall = reference.check_residual_knn(
                w.backend, w.query_ids, idx, p.k, p.predecessor_mode, strict=False, reference=ref)
            step["miss_rate"] = 1.0 - float(recall)
        out["steps"][label] = step
    return out


ladder_cache.timeout = 14400 if c.GOLD else 900


class _LadderBase:
    params = [[c.LADDER_PRESET], c.LADDER_LABELS]
    param_names = ["preset", "step"]
    setup_cache = ladder_cache
    timeout = ladder_cache.timeout

    def setup(self, cache, preset, step):
        if cache["missing"]:
            raise NotImplementedError(cache["missing"])
        if step not in cache["steps"]:
            raise NotImplementedError(f"step {step!r} is not in this commit's Phases.ladder()")


class PhaseLadder(_LadderBase):
    """Build telemetry per ladder step: medians of LADDER_REPEATS builds, in ms."""

    def track_traversal_ms(self, cache, preset, step):
        return cache["steps"][step]["traversal_ms"]

    def track_whitened_block_ms(self, cache, preset, step):
        return cache["steps"][step]["whitened_block_ms"]

    def track_kernel_provider_ms(self, cache, preset, step):
        return cache["steps"][step]["kernel_provider_ms"]

    def track_conflict_graph_ms(self, cache, preset, step):
        return cache["steps"][step]["conflict_graph_ms"]

    def track_build_wall_ms(self, cache, preset, step):
        return cache["steps"][step]["build_wall_ms"]

    def track_dominated_traversal_ms(self, cache, preset, step):
        return cache["steps"][step]["dominated_traversal_ms"]

    def track_knn_ms(self, cache, preset, step):
        return cache["steps"][step]["knn_ms"]

    track_traversal_ms.unit = track_whitened_block_ms.unit = track_kernel_provider_ms.unit = "ms"
    track_conflict_graph_ms.unit = track_build_wall_ms.unit = "ms"
    track_dominated_traversal_ms.unit = track_knn_ms.unit = "ms"


class PhaseLadderAccuracy(_LadderBase):
    """1 - recall against the float64 brute force, per ladder step (lower is better; 0 = exact)."""

    def setup(self, cache, preset, step):
        super().setup(cache, preset, step)
        if cache["miss_rate_missing"]:
            raise NotImplementedError(cache["miss_rate_missing"])

    def track_miss_rate(self, cache, preset, step):
        return cache["steps"][step]["miss_rate"]

    track_miss_rate.unit = "1 - recall"
