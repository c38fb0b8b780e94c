"""The bench result: one JSON-ready dict per run of a preset (``SCHEMA_ID``), built from the
build and query reports of its runs and the probes beside them, and the figures thresholds are
judged on."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .common import SCHEMA_ID, SCHEMA_VERSION

# Summary keys taken as the worst case over repeated runs instead of the median.
_WORST_OF_RUNS = {"pairwise_not_reused_after_first": max}


def base_name(preset) -> str:
    """The named preset a (possibly scaled) preset comes from: 'quick@n=600' -> 'quick'."""
    return preset.name.split("@", 1)[0]


@dataclass
class Measurement:
    """What ``bench.measure`` returns: the build and query reports of every run, and the last result."""

    build_reports: list
    query_reports: list
    results: list      # (idx, dist) of every run
    tree: object       # the last run's tree


@dataclass(frozen=True)
class SingleRows:
    """The single-row walk of a sample of a run's query rows (``bench.single_row_sample``)."""

    rows: int             # rows sampled
    pairs_evaluated: int  # pairs their walks evaluated, one row a block
    mismatches: int       # sampled rows whose ids differ from the blocked run's


@dataclass(frozen=True)
class Probes:
    """What a bench run measures beside its builds and queries; None where not measured.

    peak_rss_mb: the process's peak resident memory after the builds and queries, in MB
                 (10^6 bytes; ``bench.peak_rss_mb``)
    workers:     threads the queries' walks ran on, whose thread time the tile counters sum
    gemm:        the DGEMM probe on ``workers`` threads (``gemm.GemmProbe``), residual only
    single:      the single-row sample (``SingleRows``), residual presets with --check only
    """

    peak_rss_mb: float | None = None
    workers: int | None = None
    gemm: object | None = None
    single: SingleRows | None = None


def _median(values):
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def combine_summaries(summaries: list[dict]) -> dict:
    """Per key, the median over runs (the worst case for the reuse count); None stays None."""
    out = {}
    for key in summaries[0]:
        values = [s.get(key) for s in summaries]
        if all(v is None for v in values):
            out[key] = None
        elif key in _WORST_OF_RUNS:
            out[key] = _WORST_OF_RUNS[key](v for v in values if v is not None)
        else:
            med = _median(values)
            out[key] = int(med) if all(isinstance(v, int) for v in values) and med == int(med) else med
    return out


def preset_fields(preset) -> dict:
    return {
        "preset": preset.name,
        "base_preset": base_name(preset),
        "metric": preset.metric,
        "n": preset.n,
        "d": preset.d,
        "k": preset.k,
        "queries": preset.queries,
        "inducing": preset.inducing,
        "predecessor_mode": preset.predecessor_mode,
        "batch_size": preset.batch_size,
        "seed": preset.seed,
    }


def make_result(preset, runtime, measurement: Measurement, *, scaled: bool = False,
                warmup_s: float | None = None, ref=None, recalls: list | None = None,
                data_s: float | None = None, probes: Probes | None = None) -> dict:
    """The JSON-ready record of one bench run (without verdicts, environment and git).

    ref: the ``bench.Reference`` of --check; probes: what was measured beside the runs.
    """
    probes = probes or Probes()
    builds = [b.build_wall_ms for b in measurement.build_reports]
    queries = [q.query_wall_ms for q in measurement.query_reports]
    summary = combine_summaries([b.summary() for b in measurement.build_reports])
    build_ms = _median(builds)
    query_ms = _median(queries)
    qrep = measurement.query_reports[-1]
    result = {
        "schema": SCHEMA_ID,
        "version": SCHEMA_VERSION,
        **preset_fields(preset),
        "scaled": bool(scaled),
        "phases": runtime.phases.as_dict(),
        "phases_label": runtime.phases.label(),
        "runtime": {key: entry["value"] for key, entry in runtime.describe().items()},
        "runtime_sources": {key: entry["source"] for key, entry in runtime.describe().items()},
        "repeat": len(builds),
        "warmup_ms": None if warmup_s is None else warmup_s * 1e3,
        "data_ms": None if data_s is None else data_s * 1e3,
        "build_wall_ms": build_ms,
        "build_wall_ms_runs": builds,
        "query_wall_ms": query_ms,
        "query_wall_ms_runs": queries,
        "queries_per_s": preset.queries / (query_ms / 1e3) if query_ms else None,
        "pairs_evaluated": qrep.pairs_evaluated,
        "query": {
            "whitened_block_pairs": qrep.whitened_block_pairs,
            "whitened_block_ms": _median([q.whitened_block_ms for q in measurement.query_reports]),
            "kernel_provider_pairs": qrep.kernel_provider_pairs,
            "kernel_provider_ms": _median([q.kernel_provider_ms for q in measurement.query_reports]),
            **query_figures(preset, measurement.query_reports, probes),
        },
        "peak_rss_mb": probes.peak_rss_mb,
        "dgemm_gflops_rounds": None if probes.gemm is None else list(probes.gemm.rounds),
        "single_row_mismatches": None if probes.single is None else probes.single.mismatches,
        "recall": None,
        "recall_runs": None,
        "reference": None,
        "reference_ms": None,
        "reference_sampling": None,
        "ckdtree_query_ms": None,
        "summary": summary,
    }
    if ref is not None:
        result["reference"] = ref.kind
        result["reference_ms"] = ref.ms
        result["reference_sampling"] = ref.sampling
        result["ckdtree_query_ms"] = ref.ckdtree_query_ms
    if recalls:
        result["recall_runs"] = list(recalls)
        result["recall"] = min(recalls)
    result["derived"] = derived_figures(result)
    return result


def brute_pairs_per_row(preset) -> float:
    """Pairs a row of the brute force evaluates for the preset's job: the mean of i over
    i < n in predecessor mode, n - 1 for dataset ids (not the query itself), n for fresh points."""
    if preset.predecessor_mode:
        return (preset.n - 1) / 2
    return float(preset.n - 1 if preset.is_residual else preset.n)


def _ratio(num, den):
    return None if num is None or not den else num / den


def query_figures(preset, reports: list, probes: Probes) -> dict:
    """The query phase's pair and GEMM figures (QUERY_FIGURES) from the runs' QueryReports.

    pairs are the last run's (every run walks the same tiles); tile_ms is the median over runs
    of whitened_block_ms + kernel_provider_ms (thread time, summed over the walk threads);
    tile_gflops counts 2 m flops a pair over tile_ms / workers; gemm_share is its ratio to the
    DGEMM probe's GFLOP/s on as many threads.
    """
    last = reports[-1]
    pairs_per_row = last.pairs_evaluated / last.queries
    brute = brute_pairs_per_row(preset)
    tile_ms = _median([q.whitened_block_ms + q.kernel_provider_ms for q in reports])
    tile_gflops = None
    if preset.is_residual and tile_ms and probes.workers:
        tile_gflops = last.pairs_evaluated * 2 * preset.inducing / (tile_ms / 1e3 / probes.workers) / 1e9
    dgemm = None if probes.gemm is None else probes.gemm.gflops
    single = probes.single
    single_per_row = None if single is None else single.pairs_evaluated / single.rows
    return {
        "pairs_per_row": pairs_per_row,
        "brute_pairs_per_row": brute,
        "pairs_over_brute": _ratio(pairs_per_row, brute),
        "tile_ms": tile_ms,
        "tile_gflops": tile_gflops,
        "dgemm_gflops": dgemm,
        "gemm_share": _ratio(tile_gflops, dgemm),
        "single_row_pairs_per_row": single_per_row,
        "single_row_sample": None if single is None else single.rows,
        "blocked_over_single": _ratio(pairs_per_row, single_per_row),
    }


def derived_figures(result: dict) -> dict:
    """Figures the issue's targets are stated in: build+query against the reference, cKDTree."""
    build, query, ref = result["build_wall_ms"], result["query_wall_ms"], result["reference_ms"]
    out = {"build_query_ms": build + query if build is not None and query is not None else None,
           "build_query_over_reference": None, "build_query_minus_reference_ms": None,
           "query_over_ckdtree": None}
    if out["build_query_ms"] is not None and ref:
        out["build_query_over_reference"] = out["build_query_ms"] / ref
        out["build_query_minus_reference_ms"] = out["build_query_ms"] - ref
    if query is not None and result.get("ckdtree_query_ms"):
        out["query_over_ckdtree"] = query / result["ckdtree_query_ms"]
    return out


# Top-level numbers of a result that thresholds may name (besides the summary and derived ones).
TOP_FIGURES = ("build_wall_ms", "query_wall_ms", "queries_per_s", "pairs_evaluated", "recall",
               "reference_ms", "ckdtree_query_ms", "warmup_ms", "data_ms", "repeat",
               "peak_rss_mb", "single_row_mismatches")
# Keys of result["query"] that thresholds may name (``query_figures``).
QUERY_FIGURES = ("pairs_per_row", "brute_pairs_per_row", "pairs_over_brute", "tile_ms",
                 "tile_gflops", "dgemm_gflops", "gemm_share", "single_row_pairs_per_row",
                 "single_row_sample", "blocked_over_single")


def known_figures() -> tuple:
    """Every figure name ``figures`` can return: TOP_FIGURES, QUERY_FIGURES, the keys of
    ``BuildReport.summary()`` and of ``derived_figures``; sorted."""
    from covertreex.telemetry import BuildReport

    summary = BuildReport(metric="", n=0, phases={}, build_wall_ms=0.0, batches=[]).summary()
    derived = derived_figures({"build_wall_ms": None, "query_wall_ms": None, "reference_ms": None})
    return tuple(sorted({*TOP_FIGURES, *QUERY_FIGURES, *summary, *derived}))


def figures(result: dict) -> dict:
    """Every figure of a result by name: top-level numbers, the query figures, the build
    summary, derived figures."""
    out = {key: value for key, value in result.items()
           if isinstance(value, (int, float)) and not isinstance(value, bool)}
    out["recall"] = result.get("recall")
    query = result.get("query") or {}
    out.update({key: query.get(key) for key in QUERY_FIGURES})
    out.update(result.get("summary") or {})
    out.update(result.get("derived") or {})
    return out
