"""The phase ladder's accuracy (docs/design.md, "Audit phases"): 1 - recall per cumulative audit phase.

One setup_cache builds the ladder preset once per step of ``Phases.ladder()`` (baseline,
+1 block_gemm, ..., +7 thread_guard; Numba warmed up per step on a small copy first), queries
it and compares the result with the float64 brute force. The miss rate is exact (0 for an
exact result), so a single value per commit is all there is to compare. The ladder's timings
and telemetry are time_* benchmarks with samples in benchmarks_telemetry.

Profile quick: preset `quick`; profile gold: `gold-d3`.
"""

from __future__ import annotations

import sys

from . import _common as c
from .benchmarks_telemetry import ladder_phases


def ladder_cache(_benchmark=None):
    """setup_cache: {'preset', 'missing', 'steps': {label: miss rate}}."""
    out = {"preset": c.LADDER_PRESET, "missing": None, "steps": {}}
    try:
        covertreex = c.require("", "CoverTree")
        reference = c.require("reference", "residual_knn", "check_residual_knn")
        ladder = dict(c.require("phases", "Phases").Phases.ladder())
        w = c.workload(c.LADDER_PRESET)
    except NotImplementedError as exc:
        out["missing"] = str(exc)
        return out
    p = w.preset
    extra = [label for label in ladder if label not in c.LADDER_LABELS]
    if extra:
        print(f"asv_bench: ladder steps not in LADDER_LABELS, not tracked: {extra}", file=sys.stderr)
    ref = reference.residual_knn(w.backend, w.query_ids, p.k, p.predecessor_mode)
    for label in c.LADDER_LABELS:
        try:
            phases = ladder_phases(label)
        except NotImplementedError:
            continue
        c.warm_up(c.LADDER_PRESET, phases)
        tree = covertreex.CoverTree(c.runtime(c.LADDER_PRESET, phases)).fit(w.fit_input)
        idx = tree.knn(w.knn_queries, p.k, predecessor_mode=p.predecessor_mode)
        recall = reference.check_residual_knn(w.backend, w.query_ids, idx, p.k, p.predecessor_mode,
                                              strict=False, reference=ref)
        out["steps"][label] = 1.0 - float(recall)
    return out


ladder_cache.timeout = 7200 if c.GOLD else 600


class PhaseLadderAccuracy:
    """1 - recall against the float64 brute force, per ladder step (lower is better; 0 = exact)."""

    params = [[c.LADDER_PRESET], c.LADDER_LABELS]
    param_names = ["preset", "step"]
    setup_cache = ladder_cache
    timeout = ladder_cache.timeout

    def setup(self, cache, preset, step):
        if cache["missing"]:
            raise NotImplementedError(cache["missing"])
        if step not in cache["steps"]:
            raise NotImplementedError(f"step {step!r} is not in this commit's Phases.ladder()")

    def track_miss_rate(self, cache, preset, step):
        return cache["steps"][step]

    track_miss_rate.unit = "1 - recall"
