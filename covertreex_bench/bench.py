"""The library side of ``covertreex bench``: run a named preset, collect its figures, judge them.

One bench run of a preset (``run_preset``):

1. warm-up: Numba compiles on first call, so a tiny instance of the same metric, phases and
   query mode is built and queried first (``warm_up``); its time is reported on its own;
2. the preset's data (points, and for residual presets the backend V, p) is built once and
   counted in no figure;
3. ``repeat`` times: ``CoverTree(runtime).fit`` (whose ``build_wall_ms`` is the authoritative
   build figure, DESIGN section 7) then ``knn_report`` on the preset's queries;
4. with ``check=True``: the float64 brute-force reference of ``covertreex.reference`` on the same
   queries (its own time is reported as ``reference_ms``), and the recall of every run against it;
   for Euclidean presets also scipy's cKDTree, the fast exact baseline;
5. the figures are the medians over the runs (worst case for recall and for the count of batches
   that did not reuse their pairwise distances) and are judged against ``perf/thresholds.toml``.

The result is one JSON-ready dict (``SCHEMA_ID``); ``run_ladder`` makes one per step of
``Phases.ladder()``. The CLI (``covertreex_bench.cli``), the pytest gate (``tests/perf``) and the
base-commit comparison (``perf/compare.py``) all go through here, so they measure the same thing.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_ID = "covertreex_bench.bench"
SCHEMA_VERSION = 1

# Warm-up instance: three insertion batches of 512 exercise the multi-batch paths.
WARMUP_N = 1100
WARMUP_QUERIES = 64

# Batch figures shown in the console table (sums and medians come from BuildReport.summary()).
TABLE_FIGURES = ("traversal_ms", "whitened_block_ms", "kernel_provider_ms", "conflict_graph_ms")
# Ladder columns: (figure key in the result, header). Ratios are taken against the step before.
LADDER_FIGURES = (
    ("build_wall_ms", "build wall ms"),
    ("traversal_ms_sum", "traversal ms"),
    ("whitened_block_ms_sum", "whitened_block ms"),
    ("kernel_provider_ms_sum", "kernel_provider ms"),
    ("conflict_graph_ms_sum", "conflict_graph ms"),
    ("query_wall_ms", "query wall ms"),
)
# Summary keys taken as the worst case over repeated runs instead of the median.
_WORST_OF_RUNS = {"pairwise_not_reused_after_first": max}

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
OPS = {
    "<=": lambda v, t: v <= t,
    "<": lambda v, t: v < t,
    ">=": lambda v, t: v >= t,
    ">": lambda v, t: v > t,
    "==": lambda v, t: v == t,
}


class BenchError(ValueError):
    """A problem with the request (unknown preset, bad thresholds file, ...): one line for the user."""


# --------------------------------------------------------------------------- presets and runtime


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


def base_name(preset) -> str:
    """The named preset a (possibly scaled) preset comes from: 'quick@n=600' -> 'quick'."""
    return preset.name.split("@", 1)[0]


def make_runtime(preset, phases=None, threads=None):
    """The Runtime a preset is benchmarked with: its metric, batch size and seed.

    phases None lets Runtime read COVERTREEX_PHASE_* (default: all phases on); batch order
    and the other settings follow Runtime's own defaults and environment variables.
    """
    from covertreex.runtime import Runtime

    return Runtime(metric=preset.metric, phases=phases, batch_size=preset.batch_size,
                   seed=preset.seed, threads=threads)


# --------------------------------------------------------------------------- environment


def environment() -> dict:
    """Versions, thread counts, CPU model and host of this process (for the JSON record)."""
    import numba
    import scipy

    import covertreex

    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "covertreex": getattr(covertreex, "__version__", None),
        "covertreex_path": str(Path(covertreex.__file__).resolve().parent),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": _affinity(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "thread_env": {key: os.environ.get(key) for key in THREAD_ENV},
        "numba_threads": numba.get_num_threads(),
        "numba_max_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": _threading_layer(),
        "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
        "covertreex_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("COVERTREEX_")},
    }
    try:
        from threadpoolctl import threadpool_info

        env["threadpools"] = [
            {key: pool.get(key) for key in ("user_api", "internal_api", "num_threads", "version")}
            for pool in threadpool_info()
        ]
    except Exception:  # threadpoolctl can fail to introspect exotic builds
        env["threadpools"] = None
    return env


def cpu_model() -> str | None:
    """The 'model name' of /proc/cpuinfo (Linux), else platform.processor(), else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return None


def _threading_layer() -> str | None:
    import numba

    try:
        return numba.threading_layer()  # only known once a parallel kernel has run
    except ValueError:
        return None


def source_root() -> Path:
    """The directory that holds the covertreex package (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent


def git_info(root=None) -> dict:
    """{"commit": HEAD sha or None, "dirty": bool or None} of the checkout holding the package."""
    root = Path(root) if root is not None else source_root()
    out = {"commit": None, "dirty": None}
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return out
        out["commit"] = sha.stdout.strip() or None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        if status.returncode == 0:
            out["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


# --------------------------------------------------------------------------- progress display


class Progress:
    """``fit(progress=...)`` callback: build progress on ``stream`` (stderr by default).

    On a terminal one line is rewritten in place; otherwise (CI logs, pipes) a plain line is
    written at most every ``interval`` seconds, and one when the build completes.
    """

    def __init__(self, label: str, stream=None, interval: float = 5.0, tty: bool | None = None):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.tty = _isatty(self.stream) if tty is None else tty
        self.start = time.perf_counter()
        self.last = self.start

    def __call__(self, placed: int, n: int) -> None:
        now = time.perf_counter()
        elapsed = now - self.start
        text = f"{self.label}: {placed}/{n} points ({100.0 * placed / max(n, 1):3.0f}%), {elapsed:6.1f} s"
        done = placed >= n
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if done else ""))
            self.stream.flush()
        elif done or now - self.last >= self.interval:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last = now


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- measuring


@dataclass
class Measurement:
    """What ``measure`` returns: the build and query reports of every run, and the last result."""

    build_reports: list
    query_reports: list
    results: list      # (idx, dist) of every run
    tree: object       # the last run's tree


def warm_up(preset, phases=None, threads=None) -> float:
    """Compile the kernels a preset's runs need on a tiny instance; returns seconds taken.

    The instance has the preset's metric, dimension, k and query mode, and the same phases
    (each phase selects its own kernels).
    """
    from covertreex.cover_tree import CoverTree
    from .workloads import load_workload, scaled

    n = min(WARMUP_N, preset.n)
    small = scaled(preset, n, None if preset.queries_all else min(WARMUP_QUERIES, n))
    start = time.perf_counter()
    workload = load_workload(small)
    tree = CoverTree(make_runtime(small, phases, threads)).fit(workload.fit_input)
    tree.knn_report(workload.knn_queries, small.k, predecessor_mode=small.predecessor_mode)
    return time.perf_counter() - start


def measure(preset, workload, runtime, repeat: int = 1, progress_factory=None) -> Measurement:
    """``repeat`` times build the tree and run the preset's queries.

    progress_factory: None, or callable(run_index) returning a ``fit(progress=...)`` callback.
    """
    from covertreex.cover_tree import CoverTree

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
# region before they sleep. cKDTree timed inside that window ran 27 ms against 21 ms after a
# 20 ms pause (euclid-32k on this 2-core machine kind, a one-off measurement of 2026-11-25),
# which would flatter the tree's ratio to it.
SETTLE_S = 0.1


def settle_workers() -> None:
    """Wait until the worker threads of the previous parallel step have gone to sleep."""
    time.sleep(SETTLE_S)


def compute_reference(preset, workload, threads=None, repeat: int = 1) -> Reference:
    """Float64 brute force on the same queries (timed); for Euclidean presets also cKDTree.

    The brute force gets as many BLAS threads as the tree has workers (``threads``, default
    the cores), and cKDTree as many ``workers``: every method runs on the same cores.
    cKDTree's time is the median of ``repeat`` query calls, as the tree's is of ``repeat``
    runs: one call of about 20 ms varies by half from run to run on a shared machine. It is
    timed before the brute force: right after it, cKDTree ran 24-26 ms against 21 ms (a
    one-off measurement, euclid-32k, 2026-11-25).
    """
    from threadpoolctl import threadpool_limits

    from covertreex import reference

    workers = threads or _affinity() or 1
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


# --------------------------------------------------------------------------- one result


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
                warmup_s: float | None = None, ref: Reference | None = None,
                recalls: list | None = None, data_s: float | None = None) -> dict:
    """The JSON-ready record of one bench run (without verdicts, environment and git)."""
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
        },
        "recall": None,
        "recall_runs": None,
        "reference": None,
        "reference_ms": None,
        "ckdtree_query_ms": None,
        "summary": summary,
    }
    if ref is not None:
        result["reference"] = ref.kind
        result["reference_ms"] = ref.ms
        result["ckdtree_query_ms"] = ref.ckdtree_query_ms
    if recalls:
        result["recall_runs"] = list(recalls)
        result["recall"] = min(recalls)
    result["derived"] = derived_figures(result)
    return result


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


def figures(result: dict) -> dict:
    """Every figure of a result by name: top-level numbers, the build summary, derived figures."""
    out = {key: value for key, value in result.items()
           if isinstance(value, (int, float)) and not isinstance(value, bool)}
    out["recall"] = result.get("recall")
    out.update(result.get("summary") or {})
    out.update(result.get("derived") or {})
    return out


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Threshold:
    """One gate: ``figure op limit``, where limit is the entry named by ``gate``."""

    table: str
    figure: str
    op: str
    gate: str
    limits: dict        # every stated number: {"audit": ..., "machine": ..., "issue": ...}
    source: str = ""

    @property
    def limit(self) -> float:
        return self.limits[self.gate]


@dataclass(frozen=True)
class Verdict:
    table: str
    figure: str
    value: float | None
    op: str
    limit: float
    gate: str
    limits: dict
    status: str          # "PASS", "FAIL" or "SKIP" (figure not measured in this run)
    note: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def message(self) -> str:
        """One line naming the figure, its value and its threshold."""
        others = ", ".join(f"{k} {v:g}" for k, v in self.limits.items() if k != self.gate)
        value = "not measured" if self.value is None else f"{self.value:.6g}"
        return (f"{self.figure} = {value}, threshold {self.op} {self.limit:g} "
                f"({self.gate}, table {self.table}{'; ' + others if others else ''}): {self.status}"
                + (f" ({self.note})" if self.note else ""))


def default_thresholds_path() -> Path | None:
    """perf/thresholds.toml of the current directory's checkout, else of the package's checkout."""
    for root in (Path.cwd(), source_root()):
        path = root / "perf" / "thresholds.toml"
        if path.is_file():
            return path
    return None


def load_thresholds(path=None) -> dict:
    """Parse a thresholds file (tomllib); BenchError on a missing file or a malformed entry."""
    import tomllib

    if path is None:
        path = default_thresholds_path()
        if path is None:
            raise BenchError("no perf/thresholds.toml found in the current directory or the "
                             "package's checkout; pass --thresholds PATH")
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError:
        raise BenchError(f"thresholds file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BenchError(f"cannot read thresholds file {path}: {exc}") from None
    config["_path"] = str(path)
    for table_name, table in threshold_tables(config).items():
        _table_thresholds(table_name, table)  # raises on a malformed entry
    return config


def threshold_tables(config: dict) -> dict:
    """{table name: table} for every table that names the presets it gates."""
    return {name: table for name, table in config.items()
            if isinstance(table, dict) and "presets" in table}


def _table_thresholds(table_name: str, table: dict) -> list[Threshold]:
    out = []
    for figure, entry in table.items():
        if not isinstance(entry, dict):
            continue
        where = f"thresholds [{table_name}.{figure}]"
        op = entry.get("op")
        if op not in OPS:
            raise BenchError(f"{where}: op must be one of {' '.join(OPS)}, got {op!r}")
        gate = entry.get("gate", "machine")
        limits = {key: float(value) for key, value in entry.items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool)}
        if gate not in limits:
            raise BenchError(f"{where}: gate = {gate!r} names no number of the entry "
                             f"(it has {', '.join(limits) or 'none'})")
        out.append(Threshold(table_name, figure, op, gate, limits, str(entry.get("source", ""))))
    return out


def thresholds_for(config: dict, preset_name: str) -> list[Threshold]:
    """Every threshold of every table whose ``presets`` list holds ``preset_name``."""
    out = []
    for table_name, table in threshold_tables(config).items():
        if preset_name in table.get("presets", ()):
            out.extend(_table_thresholds(table_name, table))
    return out


def evaluate(result: dict, thresholds: list[Threshold]) -> list[Verdict]:
    """One verdict per threshold; a figure this run did not measure is SKIP, never PASS."""
    values = figures(result)
    out = []
    for t in thresholds:
        value = values.get(t.figure)
        if value is None:
            if t.figure == "recall" or "reference" in t.figure or "ckdtree" in t.figure:
                note = "run with --check"
            elif t.figure.endswith("_dominated") and not values.get("dominated_batches"):
                note = "no dominated batches"
            else:
                note = "not measured in this run"
            out.append(Verdict(t.table, t.figure, None, t.op, t.limit, t.gate, t.limits, "SKIP", note))
            continue
        value = float(value)
        ok = OPS[t.op](value, t.limit) and not math.isnan(value)
        out.append(Verdict(t.table, t.figure, value, t.op, t.limit, t.gate, t.limits,
                           "PASS" if ok else "FAIL"))
    return out


def failed(verdicts) -> list[Verdict]:
    return [v for v in verdicts if v.status == "FAIL"]


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
               log_records: list | None = None, workload=None, thresholds: dict | None = None,
               say=None) -> dict:
    """Warm up, build and query ``repeat`` times, optionally check, and judge one preset.

    Returns the result dict with "verdicts" (when ``thresholds`` is given). ``log_records``,
    when a list, receives the telemetry records of every run (tagged with preset and run).
    ``workload`` may be passed in when the caller has it already.
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
    return _judge(preset, workload, runtime, m, check=check, threads=threads, scaled=scaled,
                  warmup_s=warmup_s, data_s=data_s, log_records=log_records, step=None,
                  ref=None, thresholds=thresholds, say=say)


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
    from dataclasses import replace

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
        verdicts = evaluate(result, thresholds_for(thresholds, base_name(preset)))
        result["thresholds_file"] = thresholds.get("_path")
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


def attach_context(record: dict) -> dict:
    """Add environment and git information (done once per JSON document)."""
    record["environment"] = environment()
    git = git_info()
    record["git_commit"] = git["commit"]
    record["git_dirty"] = git["dirty"]
    record["created_unix"] = time.time()
    return record


# --------------------------------------------------------------------------- console output


def _fmt(value, spec="{:.1f}"):
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return spec.format(value)


def fmt_recall(value) -> str:
    """1.000000 only when exact: truncated, never rounded up, so 0.9999996 never shows as 1."""
    if value is None:
        return "- (use --check)"
    return "1.000000" if value >= 1.0 else f"{math.floor(value * 1e6) / 1e6:.6f}"


def _table(rows, align=None) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    align = align or ["<"] + [">"] * (len(widths) - 1)
    lines = []
    for r, row in enumerate(rows):
        lines.append("  ".join(f"{str(c):{a}{w}}" for c, w, a in zip(row, widths, align)).rstrip())
        if r == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def format_result(result: dict) -> str:
    """The short console table of one run: walls, q/s, recall, batch medians, verdicts."""
    s = result["summary"]
    head = (f"{result['preset']}: {result['metric']}, n={result['n']}, d={result['d']}, "
            f"k={result['k']}, queries={result['queries']}"
            + (", predecessor mode" if result["predecessor_mode"] else "")
            + f"; phases {result['phases_label']}; repeat {result['repeat']}"
            + ("; SCALED (not the named preset)" if result.get("scaled") else ""))
    lines = [head]
    runs = f" (median of {result['repeat']})" if result["repeat"] > 1 else ""
    ref = ""
    if result.get("reference_ms") is not None:
        ref = f"   reference ({result['reference']}) {result['reference_ms']:.1f} ms"
        if result.get("ckdtree_query_ms") is not None:
            ref += f", cKDTree queries {result['ckdtree_query_ms']:.1f} ms{runs}"
    lines += [
        f"  warm-up (JIT)  {_fmt(result.get('warmup_ms'), '{:.0f}')} ms, not counted below",
        f"  build wall     {_fmt(result['build_wall_ms'])} ms{runs}",
        f"  query wall     {_fmt(result['query_wall_ms'])} ms{runs}",
        f"  queries/s      {_fmt(result['queries_per_s'], '{:.0f}')}",
        f"  recall         {fmt_recall(result['recall'])}{ref}",
        f"  batches        {s['batches']} ({s['dominated_batches']} dominated)",
        "",
    ]
    rows = [("batch figure", "median", "median dominated", "sum")]
    for name in TABLE_FIGURES:
        rows.append((name, _fmt(s[f"{name}_median"], "{:.2f}"),
                     _fmt(s[f"{name}_median_dominated"], "{:.2f}"), _fmt(s[f"{name}_sum"], "{:.1f}")))
    lines += ["  " + line for line in _table(rows)]
    if result["metric"] == "residual_correlation":
        share = s.get("tile_share_of_traversal")
        lines.append(f"  tile share of traversal {_fmt(share, '{:.3f}')}, pairwise not reused after "
                     f"the first batch {s.get('pairwise_not_reused_after_first')}")
    if result.get("verdicts") is not None:
        lines += ["", format_verdicts(result["verdicts"], result.get("thresholds_file"),
                                      informational=result.get("scaled", False))]
    return "\n".join(lines)


def _fmt_value(value) -> str:
    """4 significant digits, without exponents for the magnitudes timings take."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_verdicts(verdicts, path=None, informational=False) -> str:
    if not verdicts:
        return f"no thresholds for this preset in {path or 'the thresholds file'}"
    rows = [("threshold", "value", "limit", "gate", "audit", "verdict")]
    for v in verdicts:
        v = v if isinstance(v, dict) else v.as_dict()
        audit = v["limits"].get("audit")
        audit_text = "-" if audit is None else f"{v['op']} {audit:g}"
        rows.append((f"[{v['table']}] {v['figure']}", _fmt_value(v["value"]),
                     f"{v['op']} {v['limit']:g}", v["gate"], audit_text,
                     v["status"] + (f" ({v['note']})" if v["note"] else "")))
    lines = _table(rows, ["<", ">", ">", "<", ">", "<"])
    counts = {s: sum(1 for v in verdicts if (v if isinstance(v, dict) else v.as_dict())["status"] == s)
              for s in ("PASS", "FAIL", "SKIP")}
    tail = f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP"
    if path:
        tail += f" (thresholds: {path})"
    if informational:
        tail += "; scaled run: verdicts are informational and do not set the exit code"
    return "\n".join(["  " + line for line in lines] + ["  " + tail])


def format_ladder(ladder: dict) -> str:
    """One row per step; each figure with its ratio against the step before."""
    steps = ladder["steps"]
    head = ["step"] + [h for _, h in LADDER_FIGURES] + ["recall"]
    rows = [tuple(head)]
    previous = None
    for step in steps:
        vals = figures(step)
        row = [step["step"]]
        for key, _ in LADDER_FIGURES:
            value = vals.get(key)
            cell = _fmt(value, "{:.1f}")
            if previous is not None and value is not None and previous.get(key):
                cell += f" ({value / previous[key]:.2f}x)"
            row.append(cell)
        row.append(fmt_recall(step.get("recall")) if step.get("recall") is not None else "-")
        rows.append(tuple(row))
        previous = vals
    title = (f"phase ladder on {ladder['preset']} (sums over batches; (r x) = ratio to the step "
             f"before, < 1 is faster)")
    if ladder.get("reference_ms") is not None:
        title += f"; reference {ladder['reference_ms']:.1f} ms"
    return "\n".join([title] + ["  " + line for line in _table(rows)])
