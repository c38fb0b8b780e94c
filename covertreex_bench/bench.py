"""The library side of ``covertreex bench``: run a named preset, collect its figures, judge them.

One bench run of a preset (``run_preset``):

1. warm-up: Numba compiles on first call, so a tiny instance of the same metric, phases and
   query mode is built and queried first (``runtime.warm_up``); its time is reported on its own;
2. the preset's data (points, and for residual presets the backend V, p) is built once and
   counted in no figure;
3. ``repeat`` times: ``CoverTree(runtime).fit`` (whose ``build_wall_ms`` is the authoritative
   build figure, docs/design.md, "Telemetry") then ``knn_report`` on the preset's queries;
4. the probes beside the runs (``results.Probes``): the process's peak resident memory, read
   before any reference so that it is the job's; for residual presets the DGEMM probe
   (``covertreex_bench.gemm``) on the walk's threads and, with ``check=True``, the single-row
   sample: ``SINGLE_ROW_SAMPLE`` query rows drawn by ``default_rng(seed + 4)``, walked on the
   same tree one row a block, whose answers must equal the blocked run's;
5. with ``check=True``: the float64 brute force of ``covertreex.reference`` on the same queries
   (its own time is reported as ``reference_ms``), and the recall of every run against it; for
   Euclidean presets also scipy's cKDTree, the fast exact baseline. A preset with
   ``reference_every = S > 1`` runs one row block in S (``reference_plan``): its time is scaled
   to all rows by rows x columns and recall is judged on those rows;
6. the figures are the medians over the runs (worst case for recall and for the count of batches
   that did not reuse their pairwise distances, ``results``) and are judged against the
   thresholds file (``thresholds``).

Every long phase shows a ``progress.Progress`` line on a terminal (``progress=False`` or
``covertreex bench --quiet``: none). ``run_ladder`` makes one result per step of
``Phases.ladder()``. The CLI (``covertreex_bench.cli``), the pytest gate (``tests/perf``) and
the asv suites measure through the same ``runtime`` module, so they measure the same thing.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from .common import SCHEMA_ID, SCHEMA_VERSION, BenchError
from .progress import Progress
from .results import (Measurement, Probes, SingleRows, base_name, figures, make_result,
                      preset_fields)
from .runtime import make_runtime, warm_up
from .thresholds import evaluate


def resolve_preset(name: str, n: int | None = None):
    """(Preset, scaled): the named preset, or with ``n`` its scaled-down copy (workloads.scaled)."""
    from .workloads import get_preset, scaled

    try:
        preset = get_preset(name)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    if n is None or n == preset.n:
        return preset, False
    if n < 2:
        raise BenchError(f"--n must be at least 2, got {n}")
    return scaled(preset, n), True


# --------------------------------------------------------------------------- measuring


def measure(preset, workload, runtime, repeat: int = 1, progress=None) -> Measurement:
    """``repeat`` times build the tree and run the preset's queries.

    progress: None, or callable(phase, run) returning a progress callable or None for phase
    "build" (``fit``) or "queries" (``knn_report``) of run ``run`` (``_progress_factory``).
    """
    from covertreex import CoverTree

    if repeat < 1:
        raise BenchError(f"repeat must be >= 1, got {repeat}")
    builds, queries, results = [], [], []
    tree = None
    for run in range(repeat):
        with _shown(progress and progress("build", run)) as shown:
            tree = CoverTree(runtime).fit(workload.fit_input, progress=shown)
        with _shown(progress and progress("queries", run)) as shown:
            idx, dist, report = tree.knn_report(workload.knn_queries, preset.k,
                                                predecessor_mode=preset.predecessor_mode,
                                                progress=shown)
        builds.append(tree.build_report)
        queries.append(report)
        results.append((idx, dist))
    return Measurement(builds, queries, results, tree)


def _shown(progress):
    """``with _shown(p) as callback``: the progress line ``p``, ended on leaving, or None."""
    return progress if progress is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------- the reference


@dataclass
class Reference:
    """The exact reference for a preset's queries and what it cost.

    result: (idx, dist), (r, k) int64 and float64, of the rows it ran; rows: their (r,) int64
    result rows among the queries (residual presets), None for all (Euclidean); ms: its time,
    scaled to every row when sampled, which ``sampling`` then describes (the JSON's
    "reference_sampling").
    """

    result: tuple
    ms: float
    kind: str
    ckdtree_query_ms: float | None = None
    rows: np.ndarray | None = None
    sampling: dict | None = None


# OpenMP (Numba's pool) and OpenBLAS workers spin for a few milliseconds after a parallel
# region before they sleep; a baseline timed inside that window runs slower than it would
# alone, which would flatter the tree's ratio to it (perf/README.md, "Timing the baselines").
SETTLE_S = 0.1

# Rows of one residual brute-force call. The reference's own GEMMs take 2^23 / n rows
# (covertreex.reference), which divides this from n = 32768 on: a call then does what one
# call on every row does on those rows. Blocks this small sample the ids finely and keep the
# progress line moving at the largest presets.
REFERENCE_BLOCK_ROWS = 256


def settle_workers() -> None:
    """Wait until the worker threads of the previous parallel step have gone to sleep."""
    time.sleep(SETTLE_S)


@dataclass(frozen=True)
class ReferencePlan:
    """The row blocks of a residual brute force and those it runs (``reference_plan``).

    ids:    (q,) int64 query ids, in the order of the result rows
    blocks: per block, the (b,) int64 result rows of b consecutive ids, ascending
    costs:  (blocks,) float64 rows x columns each block evaluates (the columns are the ids
            below its largest in predecessor mode, all n otherwise)
    timed:  (t,) int64 indices of the blocks the reference runs
    """

    ids: np.ndarray
    blocks: tuple
    costs: np.ndarray
    timed: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        """(r,) int64 result rows of the blocks run, block by block."""
        return np.concatenate([self.blocks[b] for b in self.timed])

    @property
    def scale(self) -> float:
        """All blocks' rows x columns over the run blocks': the factor from their time to all."""
        return float(self.costs.sum() / self.costs[self.timed].sum())


def reference_plan(ids, n: int, predecessor_mode: bool, every: int,
                   rows_per_block: int = REFERENCE_BLOCK_ROWS) -> ReferencePlan:
    """The blocks of ``rows_per_block`` rows of consecutive query ``ids`` (q,) among ``n``
    points, and one in ``every`` to run: the middle one of each run of ``every`` blocks (the
    last block when there are fewer), so that the sample spreads over the ids; every = 1
    runs them all. ValueError for an ``every`` or ``rows_per_block`` below 1."""
    for value, name in ((every, "every"), (rows_per_block, "rows_per_block")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    blocks = tuple(order[s:s + rows_per_block] for s in range(0, ids.shape[0], rows_per_block))
    costs = np.array([b.size * (ids[b[-1]] if predecessor_mode else n) for b in blocks],
                     dtype=np.float64)
    timed = np.arange(min(every // 2, len(blocks) - 1), len(blocks), every)
    return ReferencePlan(ids, blocks, costs, timed)


def query_ids(preset, workload) -> np.ndarray:
    """(q,) int64 dataset ids of a residual preset's query rows (every point when None)."""
    return np.arange(preset.n, dtype=np.int64) if workload.query_ids is None else workload.query_ids


def compute_reference(preset, workload, threads=None, repeat: int = 1, progress=None) -> Reference:
    """Float64 brute force on the same queries (timed); for Euclidean presets also cKDTree.

    The brute force gets as many BLAS threads as the tree has workers (``threads``, default
    the cores), and cKDTree as many ``workers``: every method runs on the same cores.
    cKDTree's time is the median of ``repeat`` query calls, as the tree's is of ``repeat``
    runs, and it is timed before the brute force, whose BLAS workers would slow it down
    (perf/README.md, "Timing the baselines"). The residual brute force runs in row blocks
    (``reference_plan``), one in ``preset.reference_every``. progress: None or
    callable(rows done, rows to run) of the residual brute force.
    """
    from threadpoolctl import threadpool_limits

    from covertreex import reference
    from covertreex.threads import default_threads

    workers = threads or default_threads()
    blas = f"BLAS on {workers} threads"
    if preset.is_residual:
        with threadpool_limits(limits=workers, user_api="blas"):
            return _residual_reference(preset, workload, blas, progress)
    from scipy.spatial import cKDTree

    kd = cKDTree(workload.points)
    times = []
    for _ in range(repeat):
        settle_workers()
        start = time.perf_counter()
        kd.query(workload.queries, k=preset.k, workers=workers)
        times.append((time.perf_counter() - start) * 1e3)
    start = time.perf_counter()
    with threadpool_limits(limits=workers, user_api="blas"):
        result = reference.euclidean_knn(workload.points, workload.queries, preset.k,
                                         predecessor_mode=preset.predecessor_mode)
    ms = (time.perf_counter() - start) * 1e3
    return Reference(result, ms, f"float64 brute force, {blas}", statistics.median(times))


def _residual_reference(preset, workload, blas: str, progress) -> Reference:
    """``covertreex.reference.residual_knn`` on the blocks ``reference_plan`` runs, each timed."""
    from covertreex import reference

    every = preset.reference_every
    plan = reference_plan(query_ids(preset, workload), preset.n, preset.predecessor_mode, every)
    rows = plan.rows
    idx = np.empty((rows.size, preset.k), dtype=np.int64)
    dist = np.empty((rows.size, preset.k))
    timed_ms, done = 0.0, 0
    for b in plan.timed:
        block = plan.blocks[b]
        start = time.perf_counter()
        part = reference.residual_knn(workload.backend, plan.ids[block], preset.k,
                                      predecessor_mode=preset.predecessor_mode)
        timed_ms += (time.perf_counter() - start) * 1e3
        idx[done:done + block.size], dist[done:done + block.size] = part
        done += block.size
        if progress is not None:
            progress(done, rows.size)
    if every == 1:
        return Reference((idx, dist), timed_ms, f"float64 brute force, {blas}", rows=rows)
    sampling = {"every": every, "blocks_timed": int(plan.timed.size),
                "blocks_total": len(plan.blocks), "rows_checked": int(rows.size),
                "timed_ms": timed_ms}
    kind = (f"float64 brute force SAMPLED: 1 row block in {every} ({plan.timed.size} of "
            f"{len(plan.blocks)} blocks, {rows.size} of {plan.ids.size} rows), its time scaled to "
            f"all rows by rows x columns; recall on those rows only; {blas}")
    return Reference((idx, dist), timed_ms * plan.scale, kind, rows=rows, sampling=sampling)


def recall_of(preset, workload, idx, dist, ref: Reference) -> float:
    """Recall of one result against the reference (1.0 = exact), via covertreex.reference,
    on the rows the reference ran (``ref.rows``)."""
    from covertreex import reference

    if preset.is_residual:
        return float(reference.check_residual_knn(
            workload.backend, query_ids(preset, workload)[ref.rows], idx[ref.rows], preset.k,
            predecessor_mode=preset.predecessor_mode, strict=False, reference=ref.result))
    return float(reference.check_euclidean_knn(
        workload.points, workload.queries, idx, dist, preset.k,
        predecessor_mode=preset.predecessor_mode, strict=False, reference=ref.result))


# --------------------------------------------------------------------------- probes

# Rows of the single-row sample: a mean over a few hundred rows, while walking them one a
# block (the slowest way to walk rows) stays small beside the queries of the large presets.
SINGLE_ROW_SAMPLE = 256


def peak_rss_mb() -> float | None:
    """The process's peak resident memory so far, in MB (10^6 bytes, the unit of the issue's
    2.5 GB): ``ru_maxrss``, which Linux gives in KiB and macOS in bytes; None without the
    resource module (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e6


def walk_workers(runtime, queries: int) -> int:
    """Threads a blocked walk of ``queries`` rows runs on: the runtime's (default the cores),
    no more than it has blocks (as ``covertreex.query.knn`` decides)."""
    from covertreex.threads import default_threads

    block = min(runtime.query_block, queries)
    return min(runtime.threads or default_threads(), -(-queries // block))


def gemm_probe(preset, runtime, workers: int):
    """The DGEMM probe of a residual preset: (query_block x m) @ (m x TILE_CHUNK), the shape of
    a chunk of the walk's tiles, on ``workers`` threads (``gemm.dgemm_gflops``, about 0.75 s);
    None for Euclidean presets."""
    if not preset.is_residual:
        return None
    from covertreex.metrics.residual.tile_kernels import TILE_CHUNK

    from .gemm import dgemm_gflops

    return dgemm_gflops(min(runtime.query_block, preset.queries), preset.inducing, TILE_CHUNK,
                        workers)


def single_row_sample(preset, workload, m: Measurement, progress=None) -> SingleRows:
    """Walk ``SINGLE_ROW_SAMPLE`` (at most q) query rows, drawn uniformly by
    ``default_rng(seed + 4)``, on the last run's tree with ``query_block = 1``.

    In predecessor mode a row's cost grows with its id, so a uniform sample estimates the
    mean pairs per row. Returns their pairs and the count of rows whose ids differ from the
    last blocked run's (an equality check, not timed). progress: callable(done, rows) or None.
    """
    blocked_idx = m.results[-1][0]
    q = blocked_idx.shape[0]
    rows = np.sort(np.random.default_rng(preset.seed + 4).choice(q, min(SINGLE_ROW_SAMPLE, q),
                                                                 replace=False))
    tree = m.tree
    single = replace(tree, runtime=replace(tree.runtime, query_block=1))
    idx, _, report = single.knn_report(query_ids(preset, workload)[rows], preset.k,
                                       predecessor_mode=preset.predecessor_mode, progress=progress)
    mismatches = int(np.count_nonzero((idx != blocked_idx[rows]).any(axis=1)))
    return SingleRows(int(rows.size), report.pairs_evaluated, mismatches)


# --------------------------------------------------------------------------- whole runs


def _log_records(preset, step, run, build_report, query_report):
    """Telemetry records of one run, tagged with preset, run (and ladder step): extra keys the
    schema allows."""
    from covertreex.telemetry import build_records, query_record

    tag = {"preset": preset.name, "run": run}
    if step is not None:
        tag["step"] = step
    return [{**rec, **tag} for rec in build_records(build_report)] + [{**query_record(query_report), **tag}]


def run_preset(preset, *, phases=None, repeat: int = 1, check: bool = False, threads=None,
               scaled: bool = False, warm: bool = True, progress: bool = True, stream=None,
               log_records: list | None = None, workload=None, thresholds=None,
               say=None, client=None) -> dict:
    """Warm up, build and query ``repeat`` times, probe, optionally check, and judge one preset.

    Returns the result dict with "verdicts" (when ``thresholds`` is given). ``log_records``,
    when a list, receives the telemetry records of every run (tagged with preset and run).
    ``workload`` may be passed in when the caller has it already. ``client``: a Dask client
    whose cluster runs the queries again (dask_bench.on_cluster); the result's query figures
    are then the cluster's, and its "dask" entry says how the cluster compared. progress:
    show a progress line of each long phase on ``stream`` (default stderr) when it is a terminal.
    """
    say = say or (lambda msg: None)
    runtime = make_runtime(preset, phases, threads)
    warmup_s = _warm(preset, runtime, threads, say) if warm else None
    data_s = None
    if workload is None:
        workload, data_s = _load(preset, progress, stream)
    m = measure(preset, workload, runtime, repeat,
                _progress_factory(preset, None, repeat, progress, stream))
    cluster = None
    if client is not None:
        from .dask_bench import on_cluster

        say(f"dask: the queries again on {len(client.nthreads())} worker(s)")
        cluster = on_cluster(preset, workload, m, client)
    peak = peak_rss_mb()
    if cluster is None:
        workers = walk_workers(runtime, preset.queries)
        gemm = _gemm(preset, runtime, workers, say)
    else:
        # The cluster's tiles ran in its worker processes, maybe on other machines: a DGEMM
        # probe in this process is not their peak.
        workers = len(cluster["workers"]) * min(cluster["threads_per_worker"])
        gemm = None
    probes = Probes(peak, workers, gemm, _single(preset, workload, m, check, None, progress,
                                                 stream, say))
    result = _judge(preset, workload, runtime, m, check=check, threads=threads, scaled=scaled,
                    warmup_s=warmup_s, data_s=data_s, log_records=log_records, step=None,
                    ref=None, thresholds=thresholds, say=say, probes=probes, progress=progress,
                    stream=stream)
    if cluster is not None:
        result["dask"] = cluster
    return result


def _warm(preset, runtime, threads, say) -> float:
    say(f"warm-up: Numba JIT on a tiny {preset.metric} instance (phases {runtime.phases.label()})")
    warmup_s = warm_up(preset, runtime.phases, threads)
    say(f"warm-up: {warmup_s:.2f} s")
    return warmup_s


def _progress(enabled: bool, stream, label: str, unit: str = "rows"):
    """The progress line of one phase (``progress.Progress``), or None when progress is off."""
    return Progress(label, unit=unit, stream=stream) if enabled else None


def _progress_factory(preset, step, repeat, progress, stream, run_offset=0):
    """A ``measure`` progress factory naming the phase, the preset, the ladder step and the run."""
    if not progress:
        return None

    def factory(phase, run):
        run += run_offset
        label = f"{phase} {preset.name}" + (f" [{step}]" if step else "") + \
            (f" run {run + 1}/{repeat}" if repeat > 1 else "")
        return _progress(True, stream, label, "points" if phase == "build" else "rows")
    return factory


def _load(preset, progress, stream):
    """(the preset's Workload, seconds it took), with the backend's progress line."""
    from .workloads import load_workload

    start = time.perf_counter()
    with _shown(_progress(progress and preset.is_residual, stream,
                          f"data {preset.name}: residual backend V", "points")) as shown:
        workload = load_workload(preset, progress=shown)
    return workload, time.perf_counter() - start


def _gemm(preset, runtime, workers, say):
    if preset.is_residual:
        say(f"DGEMM probe: the walk's tile shape on {workers} thread(s), BLAS on 1 thread each")
    return gemm_probe(preset, runtime, workers)


def _single(preset, workload, m, check, step, progress, stream, say):
    """The single-row sample of a residual run with ``check``, else None."""
    if not (check and preset.is_residual):
        return None
    say(f"single-row sample: {min(SINGLE_ROW_SAMPLE, preset.queries)} query rows, one a block")
    label = f"single rows {preset.name}" + (f" [{step}]" if step else "")
    with _shown(_progress(progress, stream, label)) as shown:
        return single_row_sample(preset, workload, m, shown)


def _reference(preset, workload, threads, repeat, progress, stream, say) -> Reference:
    every = preset.reference_every
    sampled = f", 1 row block in {every} (sampled; its time scaled to all rows)" if every > 1 else ""
    say(f"reference: float64 brute force on the same queries{sampled}")
    label = f"reference {preset.name}" + (f" (1 block in {every})" if every > 1 else "")
    with _shown(_progress(progress and preset.is_residual, stream, label)) as shown:
        return compute_reference(preset, workload, threads, repeat, shown)


def _judge(preset, workload, runtime, m, *, check, threads, scaled, warmup_s, data_s,
           log_records, step, ref, thresholds, say, probes, progress=False, stream=None) -> dict:
    """The result dict of the runs in ``m`` and their ``probes``: recall (with ``check``; the
    reference is computed unless ``ref`` is given), telemetry records, figures and verdicts."""
    recalls = None
    if check:
        if ref is None:
            ref = _reference(preset, workload, threads, len(m.results), progress, stream, say)
        recalls = []
        for run, (idx, dist) in enumerate(m.results):
            recalls.append(recall_of(preset, workload, idx, dist, ref))
            m.query_reports[run] = replace(m.query_reports[run], recall=recalls[-1])
    if log_records is not None:
        for run, (build, qrep) in enumerate(zip(m.build_reports, m.query_reports)):
            log_records.extend(_log_records(preset, step, run, build, qrep))
    result = make_result(preset, runtime, m, scaled=scaled, warmup_s=warmup_s, ref=ref,
                         recalls=recalls, data_s=data_s, probes=probes)
    if step is not None:
        result["step"] = step
    if thresholds is not None:
        verdicts = evaluate(figures(result), thresholds.for_preset(base_name(preset)))
        result["thresholds_file"] = thresholds.path
        result["verdicts"] = [v.as_dict() for v in verdicts]
    return result


def run_ladder(preset, *, repeat=1, check=False, threads=None, scaled=False, progress=True,
               stream=None, log_records=None, thresholds=None, say=None) -> dict:
    """Every step of ``Phases.ladder()`` on one shared data set and reference.

    The steps take turns: round r builds and queries once per step, forward in even rounds
    and backward in odd ones, so machine load that drifts over the minutes a ladder takes
    falls on every step alike instead of on the later ones. A step's figures are the medians
    over its ``repeat`` rounds. The probes follow the rounds: peak memory (the peak over
    every step) and the DGEMM probe once, the single-row sample per step; the reference last.
    """
    from covertreex.phases import Phases

    say = say or (lambda msg: None)
    workload, data_s = _load(preset, progress, stream)
    ladder = Phases.ladder()
    runtimes, warmups = {}, {}
    for label, phases in ladder:
        say(f"step {label}")
        runtimes[label] = make_runtime(preset, phases, threads)
        warmups[label] = _warm(preset, runtimes[label], threads, say)
    runs = {label: [] for label, _ in ladder}
    for r in range(repeat):
        for label, _ in (ladder if r % 2 == 0 else ladder[::-1]):
            say(f"round {r + 1}/{repeat}: step {label}")
            runs[label].append(measure(preset, workload, runtimes[label], 1, _progress_factory(
                preset, label, repeat, progress, stream, run_offset=r)))
    ms = {label: Measurement([b for x in done for b in x.build_reports],
                             [q for x in done for q in x.query_reports],
                             [res for x in done for res in x.results], done[-1].tree)
          for label, done in runs.items()}
    peak = peak_rss_mb()
    workers = walk_workers(runtimes[ladder[-1][0]], preset.queries)
    gemm = _gemm(preset, runtimes[ladder[-1][0]], workers, say)
    probes = {label: Probes(peak, workers, gemm, _single(preset, workload, ms[label], check, label,
                                                         progress, stream, say))
              for label, _ in ladder}
    ref = _reference(preset, workload, threads, repeat, progress, stream, say) if check else None
    steps = [_judge(preset, workload, runtimes[label], ms[label], check=check, threads=threads,
                    scaled=scaled, warmup_s=warmups[label], data_s=data_s,
                    log_records=log_records, step=label, ref=ref, thresholds=thresholds,
                    say=say, probes=probes[label])
             for label, _ in ladder]
    return {"schema": SCHEMA_ID, "version": SCHEMA_VERSION, "ladder": True, **preset_fields(preset),
            "scaled": bool(scaled), "repeat": repeat, "data_ms": data_s * 1e3,
            "reference": None if ref is None else ref.kind,
            "reference_ms": None if ref is None else ref.ms,
            "reference_sampling": None if ref is None else ref.sampling, "steps": steps}
