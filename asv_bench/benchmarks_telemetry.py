"""Build and query telemetry with samples, per step of the phase ladder, so that ``asv
continuous`` and ``asv compare`` judge them with asv's own statistics.

Each figure is a ``time_*`` benchmark whose ``timer`` is a ``TelemetryClock``: the clock
advances by the figure of every build (or query) the benchmark runs, so asv's sample for one
call is that call's telemetry figure in seconds (traversal_ms etc. summed over the batches of
one build, ``BuildReport.summary()``; the dominated-batch median; the index's own
``build_wall_ms`` and ``query_wall_ms``). asv collects ``repeat`` samples in each of ``rounds``
processes, like any time_* benchmark, and keeps them for its Mann-Whitney test.

Setup warms the step's kernels up on a small copy (not measured). Profile quick: preset
`quick`; gold: `gold-d3`.
"""

from __future__ import annotations

from . import _common as c

# Figure (benchmark name after time_) -> BuildReport.summary() key, in ms.
BUILD_FIGURES = {
    "traversal_ms": "traversal_ms_sum",
    "whitened_block_ms": "whitened_block_ms_sum",
    "kernel_provider_ms": "kernel_provider_ms_sum",
    "conflict_graph_ms": "conflict_graph_ms_sum",
    "build_wall_ms": "build_wall_ms",
    # The audit's Phase 1 gate: median traversal_ms of the dominated batches (<= 150 ms).
    "dominated_traversal_ms": "traversal_ms_median_dominated",
}


class TelemetryClock:
    """An asv timer: the seconds of one telemetry figure summed over the calls so far. asv
    reads it before and after a call; the difference is that call's figure."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    def add(self, ms) -> None:
        if ms is None:
            raise NotImplementedError("this build has no value for the figure (no dominated batches)")
        self.seconds += ms / 1e3


CLOCKS = {name: TelemetryClock() for name in (*BUILD_FIGURES, "query_wall_ms")}


def ladder_phases(step: str):
    """The Phases of ladder step ``step`` in the installed commit; NotImplementedError (asv:
    skipped) when the commit has no such step or no telemetry."""
    phases_mod = c.require("phases", "Phases")
    covertreex = c.require("", "CoverTree")
    if not hasattr(phases_mod.Phases, "ladder") or not hasattr(covertreex.CoverTree, "build_report"):
        raise NotImplementedError("no Phases.ladder() or build_report (telemetry) in this commit")
    steps = dict(phases_mod.Phases.ladder())
    if step not in steps:
        raise NotImplementedError(f"step {step!r} is not in this commit's Phases.ladder()")
    return steps[step]


class _TelemetrySuite:
    params = [[c.LADDER_PRESET], c.LADDER_LABELS]
    param_names = ["preset", "step"]
    number = 1
    rounds = 4
    repeat = (2, 5, 120.0) if c.GOLD else (3, 6, 15.0)
    warmup_time = 0
    timeout = 3600 if c.GOLD else 600

    def setup(self, preset, step):
        phases = ladder_phases(step)
        self.cover_tree = c.require("", "CoverTree").CoverTree
        self.workload = c.workload(preset)
        self.runtime = c.runtime(preset, phases)
        c.warm_up(preset, phases)


class BuildTelemetry(_TelemetrySuite):
    """One fit per sample; each benchmark reports one figure of its build report."""

    def _build(self):
        summary = self.cover_tree(self.runtime).fit(self.workload.fit_input).build_report.summary()
        for name, key in BUILD_FIGURES.items():
            CLOCKS[name].add(summary.get(key))

    def time_traversal_ms(self, preset, step):
        self._build()

    def time_whitened_block_ms(self, preset, step):
        self._build()

    def time_kernel_provider_ms(self, preset, step):
        self._build()

    def time_conflict_graph_ms(self, preset, step):
        self._build()

    def time_build_wall_ms(self, preset, step):
        self._build()

    def time_dominated_traversal_ms(self, preset, step):
        self._build()


for _name in BUILD_FIGURES:
    getattr(BuildTelemetry, f"time_{_name}").timer = CLOCKS[_name]


class QueryTelemetry(_TelemetrySuite):
    """knn_report on a tree built in setup; the sample is the index's query_wall_ms."""

    def setup(self, preset, step):
        super().setup(preset, step)
        self.tree = self.cover_tree(self.runtime).fit(self.workload.fit_input)

    def time_query_wall_ms(self, preset, step):
        p = self.workload.preset
        _, _, report = self.tree.knn_report(self.workload.knn_queries, p.k,
                                            predecessor_mode=p.predecessor_mode)
        CLOCKS["query_wall_ms"].add(report.query_wall_ms)

    time_query_wall_ms.timer = CLOCKS["query_wall_ms"]
