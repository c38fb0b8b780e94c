"""The library side of ``covertreex bench``: run a named preset, collect its figures, judge them.

One bench run of a preset (``run_preset``):

1. warm-up: Numba compiles on first call, so a tiny instance of the same metric, phases and
   query mode is built and queried first (``runtime.warm_up``); its time is reported on its own;
2. the preset's data (points, and for residual presets the backend V, p) is built once and
   counted in no figure;
3. ``repeat`` times: ``CoverTree(runtime).fit`` (whose ``build_wall_ms`` is the authoritative
   build figure, docs/design.md, "Telemetry") then ``knn_report`` on the preset's queries;
4. with ``check=True``: the float64 brute-force reference of ``covertreex.reference`` on the same
   queries (its own time is reported as ``reference_ms``), and the recall of every run against it;
   for Euclidean presets also scipy's cKDTree, the fast exact baseline;
5. the figures are the medians over the runs (worst case for recall and for the count of batches
   that did not reuse their pairwise distances, ``results``) and are judged against the
   thresholds file (``thresholds``).

``run_ladder`` makes one result per step of ``Phases.ladder()``. The CLI (``covertreex_bench.cli``),
the pytest gate (``tests/perf``) and the asv suites measure through the same ``runtime`` module,
so they measure the same thing.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

from .common import SCHEMA_ID, SCHEMA_VERSION, BenchError
from .progress import Progress
from .results import Measurement, base_name, make_result, preset_fields, figures
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


def measure(preset, workload, runtime, repeat: int = 1, progress_factory=None) -> Measurement:
    """``repeat`` times build the tree and run the preset's queries.

    progress_factory: None, or callable(run_index) returning a ``fit(progress=...)`` callback.
    """
    from covertreex import CoverTree

    if repeat < 1:
        raise BenchError(f"repeat must be >= 1, got {repeat}")
    builds, queries, results = [], [], []
    tree = None
    for run in range(repeat):
        progress = progress_factory(run) if progress_factory is not None else None
        tree = CoverTree(runtime).fit(workload.fit_input, progress=progress)
        idx, dist, report = tree.knn_report(workload.knn_queries, preset.k,
                                            predecessor_mode=preset.predecessor_mode)
        builds.append(tree.build_report)
        queries.append(report)
        results.append((idx, dist))
    return Measurement(builds, queries, results, tree)


@dataclass
class Reference:
    """The exact reference for a preset's queries and what it cost."""

    result: tuple
    ms: float
    kind: str
    ckdtree_query_ms: float | None = None


# OpenMP (Numba's pool) and OpenBLAS workers spin for a few milliseconds after a parallel
# region before they sleep; a baseline timed inside that window runs slower than it would
# alone, which would flatter the tree's ratio to it (perf/README.md, "Timing the baselines").
SETTLE_S = 0.1


def settle_workers() -> None:
    """Wait until the worker threads of the previous parallel step have gone to sleep."""
    time.sleep(SETTLE_S)


def compute_reference(preset, workload, threads=None, repeat: int = 1) -> Reference:
    """Float64 brute force on the same queries (timed); for Euclidean presets also cKDTree.

    The brute force gets as many BLAS threads as the tree has workers (``threads``, default
    the cores), and cKDTree as many ``workers``: every method runs on the same cores.
    cKDTree's time is the median of ``repeat`` query calls, as the tree's is of ``repeat``
    runs, and it is timed before the brute force, whose BLAS workers would slow it down
    (perf/README.md, "Timing the baselines").
    """
    from threadpoolctl import threadpool_limits

    from covertreex import reference
    from covertreex.threads import default_threads

    workers = threads or default_threads()
    ckdtree_ms = None
    if not preset.is_residual:
        from scipy.spatial import cKDTree

        kd = cKDTree(workload.points)
        times = []
        for _ in range(repeat):
            settle_workers()
            start = time.perf_counter()
            kd.query(workload.queries, k=preset.k, workers=workers)
            times.append((time.perf_counter() - start) * 1e3)
        ckdtree_ms = statistics.median(times)
    start = time.perf_counter()
    with threadpool_limits(limits=workers, user_api="blas"):
        if preset.is_residual:
            result = reference.residual_knn(workload.backend, workload.query_ids, k=preset.k,
                                            predecessor_mode=preset.predecessor_mode)
        else:
            result = reference.euclidean_knn(workload.points, workload.queries, preset.k,
                                             predecessor_mode=preset.predecessor_mode)
    ms = (time.perf_counter() - start) * 1e3
    return Reference(result, ms, f"float64 brute force, BLAS on {workers} threads", ckdtree_ms)


def recall_of(preset, workload, idx, dist, ref: Reference) -> float:
    """Recall of one result against the reference (1.0 = exact), via covertreex.reference."""
    from covertreex import reference

    if preset.is_residual:
        return float(reference.check_residual_knn(
            workload.backend, workload.query_ids, idx, preset.k,
            predecessor_mode=preset.predecessor_mode, strict=False, reference=ref.result))
    return float(reference.check_euclidean_knn(
        workload.points, workload.queries, idx, dist, preset.k,
        predecessor_mode=preset.predecessor_mode, strict=False, reference=ref.result))


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
    """Warm up, build and query ``repeat`` times, optionally check, and judge one preset.

    Returns the result dict with "verdicts" (when ``thresholds`` is given). ``log_records``,
    when a list, receives the telemetry records of every run (tagged with preset and run).
    ``workload`` may be passed in when the caller has it already. ``client``: a Dask client
    whose cluster runs the queries again (dask_bench.on_cluster); the result's query figures
    are then the cluster's, and its "dask" entry says how the cluster compared.
    """
    from .workloads import load_workload

    say = say or (lambda msg: None)
    runtime = make_runtime(preset, phases, threads)
    warmup_s = _warm(preset, runtime, threads, say) if warm else None
    data_s = None
    if workload is None:
        start = time.perf_counter()
        workload = load_workload(preset)
        data_s = time.perf_counter() - start
    m = measure(preset, workload, runtime, repeat,
                _progress_factory(preset, None, repeat, progress, stream))
    cluster = None
    if client is not None:
        from .dask_bench import on_cluster

        say(f"dask: the queries again on {len(client.nthreads())} worker(s)")
        cluster = on_cluster(preset, workload, m, client)
    result = _judge(preset, workload, runtime, m, check=check, threads=threads, scaled=scaled,
                    warmup_s=warmup_s, data_s=data_s, log_records=log_records, step=None,
                    ref=None, thresholds=thresholds, say=say)
    if cluster is not None:
        result["dask"] = cluster
    return result


def _warm(preset, runtime, threads, say) -> float:
    say(f"warm-up: Numba JIT on a tiny {preset.metric} instance (phases {runtime.phases.label()})")
    warmup_s = warm_up(preset, runtime.phases, threads)
    say(f"warm-up: {warmup_s:.2f} s")
    return warmup_s


def _progress_factory(preset, step, repeat, progress, stream, run_offset=0):
    """A ``measure`` progress_factory naming the preset, the ladder step and the run."""
    if not progress:
        return None

    def factory(run):
        run += run_offset
        label = f"build {preset.name}" + (f" [{step}]" if step else "") + \
            (f" run {run + 1}/{repeat}" if repeat > 1 else "")
        return Progress(label, stream=stream)
    return factory


def _judge(preset, workload, runtime, m, *, check, threads, scaled, warmup_s, data_s,
           log_records, step, ref, thresholds, say) -> dict:
    """The result dict of the runs in ``m``: recall (with ``check``; the reference is computed
    unless ``ref`` is given), telemetry records, figures and verdicts."""
    recalls = None
    if check:
        if ref is None:
            say("reference: float64 brute force on the same queries")
            ref = compute_reference(preset, workload, threads, len(m.results))
        recalls = []
        for run, (idx, dist) in enumerate(m.results):
            recalls.append(recall_of(preset, workload, idx, dist, ref))
            m.query_reports[run] = replace(m.query_reports[run], recall=recalls[-1])
    if log_records is not None:
        for run, (build, qrep) in enumerate(zip(m.build_reports, m.query_reports)):
            log_records.extend(_log_records(preset, step, run, build, qrep))
    result = make_result(preset, runtime, m, scaled=scaled, warmup_s=warmup_s, ref=ref,
                         recalls=recalls, data_s=data_s)
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
    over its ``repeat`` rounds.
    """
    from covertreex.phases import Phases
    from .workloads import load_workload

    say = say or (lambda msg: None)
    start = time.perf_counter()
    workload = load_workload(preset)
    data_s = time.perf_counter() - start
    ref = None
    if check:
        say("reference: float64 brute force on the same queries")
        ref = compute_reference(preset, workload, threads, repeat)
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
    steps = []
    for label, _ in ladder:
        done = runs[label]
        m = Measurement([b for x in done for b in x.build_reports],
                        [q for x in done for q in x.query_reports],
                        [res for x in done for res in x.results], done[-1].tree)
        steps.append(_judge(preset, workload, runtimes[label], m, check=check, threads=threads,
                            scaled=scaled, warmup_s=warmups[label], data_s=data_s,
                            log_records=log_records, step=label, ref=ref,
                            thresholds=thresholds, say=say))
    return {"schema": SCHEMA_ID, "version": SCHEMA_VERSION, "ladder": True, **preset_fields(preset),
            "scaled": bool(scaled), "repeat": repeat, "data_ms": data_s * 1e3,
            "reference": None if ref is None else ref.kind,
            "reference_ms": None if ref is None else ref.ms, "steps": steps}
