"""Readers of the report's inputs; every reader tolerates a missing or malformed input.

- asv results (asv 0.6 result format, api_version 2): ``<asv>/benchmarks.json`` (metadata),
  ``<asv>/<machine>/machine.json`` and ``<asv>/<machine>/<commit>-<env>.json``, whose
  ``results`` map a benchmark name to a row laid out by ``result_columns`` (``result`` is a
  list over the product of the benchmark's ``params``; time in seconds, peakmemory in bytes);
- bench / gate JSON written by ``covertreex bench --json`` (``schema: covertreex_bench.bench``;
  ladder runs hold one result per step under ``steps``), and the gate's decisions
  (``compare.json`` of ``perf/compare.py``: ``base``, ``head`` and one entry a figure under
  ``decisions``);
- telemetry JSON lines (``covertreex.telemetry.read_jsonl``);
- profile summaries (``summary.json`` of ``covertreex profile``, ``schema: covertreex.profile``);
- the thresholds file, through ``covertreex_bench.thresholds`` (its ``[compare] min_effect``
  is the regression factor, default 1.5).

Problems are collected in ``Inputs.skipped`` (path, reason) and shown in the report.
"""

from __future__ import annotations

import ast
import glob
import itertools
import json
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import thresholds as thresholds_file

DEFAULT_FACTOR = 1.5


# The bench records memory in MB of 10^6 bytes (``peak_rss_mb``, also in the thresholds file);
# the memory trend is in MiB, as asv's bytes become.
MIB_PER_MB = 1e6 / 2**20


@dataclass(frozen=True)
class Figure:
    """A trend figure and where each source keeps it."""

    key: str
    title: str
    unit: str
    asv: tuple            # asv benchmark method names (the telemetry time_* of
                          # benchmarks_telemetry, then the older ladder track_* ones)
    bench: tuple          # keys of a flattened bench result
    thresholds: tuple     # figure names in thresholds.toml drawn on the chart
    asv_inverse: tuple = ()  # asv names of those in ``asv`` that track 1 / the figure (asv
                             # takes lower as better, so a share is tracked as its inverse)
    threshold_unit: tuple = ()  # (unit, chart units per unit) of those thresholds when the
                                # chart is in another unit


FIGURES = (
    Figure("traversal_ms", "traversal_ms (sum over the batches of a build)", "ms",
           ("time_traversal_ms", "track_traversal_ms"), ("traversal_ms_sum",), ("traversal_ms_sum", "traversal_ms")),
    Figure("dominated_traversal_ms", "traversal_ms, median of dominated batches", "ms",
           ("time_dominated_traversal_ms", "track_dominated_traversal_ms"), ("traversal_ms_median_dominated",),
           ("traversal_ms_median_dominated", "dominated_traversal_ms")),
    Figure("whitened_block_ms", "whitened_block_ms (sum over batches)", "ms",
           ("time_whitened_block_ms", "track_whitened_block_ms"), ("whitened_block_ms_sum",),
           ("whitened_block_ms_sum", "whitened_block_ms")),
    Figure("kernel_provider_ms", "kernel_provider_ms (sum over batches)", "ms",
           ("time_kernel_provider_ms", "track_kernel_provider_ms"), ("kernel_provider_ms_sum",),
           ("kernel_provider_ms_sum", "kernel_provider_ms")),
    Figure("conflict_graph_ms", "conflict_graph_ms (sum over batches)", "ms",
           ("time_conflict_graph_ms", "track_conflict_graph_ms"), ("conflict_graph_ms_sum",),
           ("conflict_graph_ms_sum", "conflict_graph_ms")),
    Figure("build_wall_ms", "build wall time", "ms", ("time_build_wall_ms", "track_build_wall_ms", "time_build"),
           ("build_wall_ms",), ("build_wall_ms",)),
    Figure("query_wall_ms", "query wall time", "ms", ("time_query_wall_ms", "track_knn_ms", "time_knn"),
           ("query_wall_ms",), ("query_wall_ms", "knn_ms")),
    Figure("peak_memory_mib", "peak memory (RSS)", "MiB", ("peakmem_build",),
           ("peak_rss_mib", "peakmem_mib"), ("peak_rss_mb",), threshold_unit=("MB", MIB_PER_MB)),
    # Query phase (bench result["query"]; asv benchmarks_vecchia).
    Figure("pairs_per_row", "query pairs evaluated per row", "pairs", ("track_pairs_per_row",),
           ("query.pairs_per_row",), ("pairs_per_row",)),
    Figure("pairs_over_brute", "query pairs per row over the brute force's", "x brute",
           ("track_pairs_over_brute",), ("query.pairs_over_brute",), ("pairs_over_brute",)),
    Figure("gemm_share", "GEMM throughput share of the query tiles", "share",
           ("track_tile_over_dgemm",), ("query.gemm_share",), ("gemm_share",),
           asv_inverse=("track_tile_over_dgemm",)),
    Figure("blocked_over_single", "pairs per row, blocked walk over single-row walk", "x",
           ("track_blocked_over_single",), ("query.blocked_over_single",), ("blocked_over_single",)),
)
FIGURE_BY_KEY = {f.key: f for f in FIGURES}
# Result fields that define a workload besides its size and queries (results.preset_fields);
# None where the result lacks one.
CONFIG_KEYS = ("metric", "d", "k", "inducing", "predecessor_mode")
# Parameters that enumerate phase settings: only their first and last values enter trends.
STEP_PARAMS = ("step",)


@dataclass
class Inputs:
    asv: pd.DataFrame = field(default_factory=pd.DataFrame)
    asv_envs: list = field(default_factory=list)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    docs: list = field(default_factory=list)          # (source, path, doc) of bench/gate JSON
    comparisons: list = field(default_factory=list)   # (path, doc) of perf/compare.py's JSON
    batches: pd.DataFrame = field(default_factory=pd.DataFrame)
    builds: pd.DataFrame = field(default_factory=pd.DataFrame)
    queries: pd.DataFrame = field(default_factory=pd.DataFrame)
    profiles: list = field(default_factory=list)      # (path, summary)
    thresholds: object | None = None                 # covertreex_bench.thresholds.Thresholds
    thresholds_path: str | None = None
    factor: float = DEFAULT_FACTOR
    read: list = field(default_factory=list)          # (kind, path, note)
    skipped: list = field(default_factory=list)       # (kind, path, reason)
    missing: dict = field(default_factory=dict)       # kind -> why nothing was read


# --------------------------------------------------------------------------- helpers


def _load_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _param_value(text) -> str:
    if not isinstance(text, str):
        return str(text)
    try:
        value = ast.literal_eval(text)
        return str(value)
    except (ValueError, SyntaxError):
        return text


def _num(v):
    if isinstance(v, bool) or v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def benchmark_type(name: str, meta: dict) -> str:
    if meta.get("type"):
        return meta["type"]
    short = name.rsplit(".", 1)[-1]
    for prefix, kind in (("time_", "time"), ("peakmem_", "peakmemory"), ("mem_", "memory"),
                         ("track_", "track")):
        if short.startswith(prefix):
            return kind
    return "unknown"


# --------------------------------------------------------------------------- asv


def load_asv(root, inputs: Inputs) -> None:
    root = Path(root)
    if not root.is_dir():
        inputs.missing["asv"] = f"no asv results folder {root}"
        return
    meta = {}
    if (root / "benchmarks.json").is_file():
        try:
            meta = _load_json(root / "benchmarks.json")
            inputs.read.append(("asv metadata", str(root / "benchmarks.json"), f"{len(meta) - 1} benchmarks"))
        except (OSError, ValueError) as exc:
            inputs.skipped.append(("asv metadata", str(root / "benchmarks.json"), str(exc)))
    rows = []
    for mdir in sorted(p for p in root.iterdir() if p.is_dir()):
        machine_info = {}
        if (mdir / "machine.json").is_file():
            try:
                machine_info = _load_json(mdir / "machine.json")
            except (OSError, ValueError) as exc:
                inputs.skipped.append(("asv machine", str(mdir / "machine.json"), str(exc)))
        for path in sorted(mdir.glob("*.json")):
            if path.name == "machine.json":
                continue
            try:
                doc = _load_json(path)
                columns = doc["result_columns"]
                results = doc["results"]
                commit = doc["commit_hash"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                inputs.skipped.append(("asv result", str(path), f"not an asv result file: {exc}"))
                continue
            params = doc.get("params") or {}
            machine = params.get("machine") or machine_info.get("machine") or mdir.name
            env = {"kind": "asv", "file": str(path), "machine": machine,
                   "env_name": doc.get("env_name"), "python": doc.get("python"),
                   "requirements": doc.get("requirements") or {},
                   "params": {**machine_info, **params}, "commit": commit,
                   "date": doc.get("date")}
            inputs.asv_envs.append(env)
            n_before = len(rows)
            for name, row in results.items():
                rows.extend(_asv_rows(name, row, columns, meta.get(name) or {}, commit, doc, machine,
                                      path, inputs))
            inputs.read.append(("asv result", str(path), f"{len(rows) - n_before} values, commit {commit[:8]}"))
    if not rows:
        inputs.missing["asv"] = f"no asv result values under {root}"
        return
    inputs.asv = pd.DataFrame(rows)


def _asv_rows(name, row, columns, meta, commit, doc, machine, path, inputs):
    if not isinstance(row, list):
        return []
    rec = dict(zip(columns, row))
    value = rec.get("result")
    params = rec.get("params") or meta.get("params") or []
    names = meta.get("param_names") or [f"param{i}" for i in range(len(params))]
    combos = list(itertools.product(*params)) if params else [()]
    values = value if isinstance(value, list) else [value]
    if len(values) != len(combos):
        inputs.skipped.append(("asv result", f"{path}:{name}",
                               f"{len(values)} values for {len(combos)} parameter combinations"))
        return []
    kind = benchmark_type(name, meta)
    unit = meta.get("unit") or {"time": "seconds", "peakmemory": "bytes"}.get(kind, "")
    # asv's 99 % interval of each value (from its samples), where it kept one.
    ci = [rec.get(key) if isinstance(rec.get(key), list) and len(rec.get(key)) == len(values)
          else [None] * len(values) for key in ("stats_ci_99_a", "stats_ci_99_b")]
    out = []
    for i, (combo, v) in enumerate(zip(combos, values)):
        pvals = {n: _param_value(c) for n, c in zip(names, combo)}
        num, ci_a, ci_b = _num(v), _num(ci[0][i]), _num(ci[1][i])
        shown_unit = unit
        scale = 1.0
        if kind == "time" or unit == "seconds":
            scale, shown_unit = 1e3, "ms"
        elif kind in ("peakmemory", "memory") or unit == "bytes":
            scale, shown_unit = 2.0 ** -20, "MiB"
        num, ci_a, ci_b = num * scale, ci_a * scale, ci_b * scale
        out.append({
            "benchmark": name, "method": name.rsplit(".", 1)[-1],
            "short": ".".join(name.split(".")[-2:]), "type": kind, "unit": shown_unit,
            "params": pvals, "param_label": " · ".join(pvals.values()),
            "param_names": tuple(names), "param_values": tuple(tuple(_param_value(x) for x in p) for p in params),
            "preset": pvals.get("preset"), "commit": commit,
            "date": (doc.get("date") or 0) / 1e3 if doc.get("date") else math.nan,
            "machine": machine, "env_name": doc.get("env_name"), "file": str(path),
            "value": num, "ci_99": (ci_a, ci_b), "failed": v is None,
        })
    return out


# --------------------------------------------------------------------------- bench / gate


def _flatten(result: dict) -> dict:
    out = {k: v for k, v in result.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key in ("summary", "derived"):
        for k, v in (result.get(key) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(k, v)
    for k, v in (result.get("query") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"query.{k}"] = v
    if isinstance(result.get("recall"), (int, float)):
        out["recall"] = result["recall"]
    if "peak_rss_mb" in out:
        out.setdefault("peak_rss_mib", out["peak_rss_mb"] * MIB_PER_MB)
    return out


def _json_files(paths) -> list[Path]:
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(x for x in p.rglob("*.json") if x.is_file()))
        elif p.is_file():
            files.append(p)
    return files


def load_bench(source: str, paths, inputs: Inputs) -> list[dict]:
    """bench/gate JSON documents under ``paths``: one row per run (per ladder step)."""
    rows = []
    files = _json_files(paths)
    if not files:
        inputs.missing[source] = "no JSON under " + ", ".join(str(p) for p in paths)
        return rows
    for path in files:
        try:
            doc = _load_json(path)
        except (OSError, ValueError) as exc:
            inputs.skipped.append((source, str(path), f"not JSON: {exc}"))
            continue
        if isinstance(doc, dict) and isinstance(doc.get("decisions"), list) and "head" in doc:
            inputs.comparisons.append((str(path), doc))
            inputs.read.append((source, str(path), f"gate decisions on {len(doc['decisions'])} "
                                                   "figures"))
            continue
        if not isinstance(doc, dict) or not (doc.get("schema") == "covertreex_bench.bench" or
                                              "build_wall_ms" in doc or "steps" in doc):
            inputs.skipped.append((source, str(path), "not a covertreex bench record "
                                   "(no schema covertreex_bench.bench, build_wall_ms or steps)"))
            continue
        inputs.docs.append((source, str(path), doc))
        env = doc.get("environment") or {}
        common = {
            "source": source, "file": str(path), "commit": doc.get("git_commit"),
            "dirty": bool(doc.get("git_dirty")), "created": _num(doc.get("created_unix")),
            "machine": env.get("hostname") or env.get("machine"), "environment": env,
            "ladder": bool(doc.get("steps")),
        }
        results = doc["steps"] if isinstance(doc.get("steps"), list) and doc["steps"] else [doc]
        for i, res in enumerate(results):
            if not isinstance(res, dict):
                continue
            rows.append({
                **common,
                "preset": res.get("preset") or doc.get("preset"),
                "base_preset": res.get("base_preset") or doc.get("base_preset") or res.get("preset") or doc.get("preset"),
                "metric": res.get("metric") or doc.get("metric"),
                "n": res.get("n") or doc.get("n"),
                "scaled": bool(res.get("scaled", doc.get("scaled", False))),
                "phases_label": res.get("phases_label") or _phases_label(res.get("phases")),
                "step": res.get("step") if common["ladder"] else None,
                "step_index": i if common["ladder"] else None,
                "steps_total": len(results) if common["ladder"] else None,
                "figures": _flatten(res),
                "config": {k: res.get(k, doc.get(k)) for k in CONFIG_KEYS},
                "reference_sampling": res.get("reference_sampling") or doc.get("reference_sampling"),
                "verdicts": res.get("verdicts") if res.get("verdicts") is not None else doc.get("verdicts"),
            })
        inputs.read.append((source, str(path), f"{len(results)} run(s)" + (" (ladder)" if common["ladder"] else "")))
    return rows


def _phases_label(phases) -> str | None:
    if not isinstance(phases, dict) or not phases:
        return None
    on = [k for k, v in phases.items() if v]
    if len(on) == len(phases):
        return "all"
    if not on:
        return "baseline"
    return ",".join(f"{k}={int(bool(v))}" for k, v in phases.items())


# --------------------------------------------------------------------------- telemetry logs


def expand_log_paths(items) -> list[Path]:
    out = []
    for item in items:
        matches = glob.glob(str(item)) if any(ch in str(item) for ch in "*?[") else [str(item)]
        for m in matches:
            p = Path(m)
            if p.is_dir():
                out.extend(sorted(p.rglob("*.jsonl")))
            elif p.exists():
                out.append(p)
    seen, unique = set(), []
    for p in out:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_logs(paths, inputs: Inputs) -> None:
    from covertreex.telemetry import read_jsonl

    batches, builds, queries = [], [], []
    if not paths:
        inputs.missing["logs"] = "no telemetry logs (*.jsonl) given or found"
        return
    for path in paths:
        try:
            records = read_jsonl(path)
        except (OSError, ValueError) as exc:
            inputs.skipped.append(("telemetry log", str(path), str(exc)))
            continue
        build_no = 0
        for rec in records:
            tag = {"log": str(path), "preset": rec.get("preset"), "step": rec.get("step"),
                   "run": rec.get("run"), "build_no": build_no}
            if rec["kind"] == "batch":
                batches.append({**tag, **{k: v for k, v in rec.items()
                                          if k not in ("schema", "version", "kind")}})
            elif rec["kind"] == "build":
                summary = rec.get("summary") or {}
                builds.append({**tag, "metric": rec.get("metric"), "n": rec.get("n"),
                               "phases_label": _phases_label(rec.get("phases")),
                               "build_wall_ms": rec.get("build_wall_ms"), **{
                                   f"s.{k}": v for k, v in summary.items()}})
                build_no += 1
            elif rec["kind"] == "query":
                queries.append({**tag, **{k: v for k, v in rec.items()
                                          if k not in ("schema", "version", "kind")}})
        inputs.read.append(("telemetry log", str(path), f"{len(records)} records"))
    if not (batches or builds or queries):
        inputs.missing["logs"] = "telemetry logs hold no records"
    inputs.batches = pd.DataFrame(batches)
    inputs.builds = pd.DataFrame(builds)
    inputs.queries = pd.DataFrame(queries)


# --------------------------------------------------------------------------- profiles


def load_profiles(root, inputs: Inputs) -> None:
    root = Path(root)
    if not root.exists():
        inputs.missing["profiles"] = f"no profile folder {root}"
        return
    files = [root] if root.is_file() else sorted(root.rglob("summary.json"))
    for path in files:
        try:
            doc = _load_json(path)
        except (OSError, ValueError) as exc:
            inputs.skipped.append(("profile", str(path), f"not JSON: {exc}"))
            continue
        if not isinstance(doc, dict) or doc.get("schema") != "covertreex.profile":
            inputs.skipped.append(("profile", str(path), "not a covertreex.profile summary"))
            continue
        inputs.profiles.append((path, doc))
        inputs.read.append(("profile", str(path), f"{len(doc.get('runs') or [])} capture(s)"))
    if not inputs.profiles:
        inputs.missing["profiles"] = f"no profile summary.json under {root}"


# --------------------------------------------------------------------------- thresholds


def load_thresholds(path, inputs: Inputs) -> None:
    """The thresholds file (a path, or the packaged file's Traversable); absent is fine."""
    if path is None:
        inputs.missing["thresholds"] = "no thresholds file"
        return
    path = path if hasattr(path, "is_file") else Path(path)
    if not path.is_file():
        inputs.missing["thresholds"] = f"no thresholds file {path}"
        return
    try:
        config = thresholds_file.load(path)
    except thresholds_file.ThresholdsError as exc:
        inputs.skipped.append(("thresholds", str(path), str(exc)))
        inputs.missing["thresholds"] = f"thresholds file {path} unreadable"
        return
    inputs.thresholds = config
    inputs.thresholds_path = config.path
    if config.compare is not None:
        inputs.factor = config.compare.min_effect
    inputs.read.append(("thresholds", config.path, f"{len(config.gates)} thresholds, "
                        f"factor {inputs.factor:g}"))


def threshold_entries(config) -> list[dict]:
    """Every threshold as a dict: {"table", "presets", "figure", "op", "gate", "limit", "limits", "source"}."""
    return [t.as_dict() for t in config.gates] if config is not None else []


# --------------------------------------------------------------------------- commits


def git_commit_times(commits, cwd=None) -> dict:
    """{commit: unix commit time} for the commits git knows here."""
    out = {}
    commits = [c for c in dict.fromkeys(commits) if isinstance(c, str) and c]
    if not commits:
        return out
    try:
        proc = subprocess.run(["git", "log", "--no-walk=unsorted", "--format=%H %ct", *commits],
                              capture_output=True, text=True, timeout=20, cwd=cwd)
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                h, _, t = line.partition(" ")
                for c in commits:
                    if h.startswith(c) or c.startswith(h):
                        out[c] = float(t)
            return out
    except (OSError, subprocess.SubprocessError):
        return out
    for c in commits:  # one unknown hash fails the whole call: ask one by one
        try:
            proc = subprocess.run(["git", "log", "-1", "--format=%ct", c], capture_output=True,
                                  text=True, timeout=10, cwd=cwd)
            if proc.returncode == 0 and proc.stdout.strip():
                out[c] = float(proc.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            break
    return out


def git_commit_subjects(commits, cwd=None) -> dict:
    """{commit: (ISO commit date, subject)} for the commits git knows here (asked one by one:
    an unknown hash must not hide the others)."""
    out = {}
    for c in dict.fromkeys(c for c in commits if isinstance(c, str) and c):
        try:
            proc = subprocess.run(["git", "log", "-1", "--format=%cI%x00%s", c.partition("+")[0], "--"],
                                  capture_output=True, text=True, timeout=10, cwd=cwd)
        except (OSError, subprocess.SubprocessError):
            break
        if proc.returncode == 0 and "\x00" in proc.stdout:
            date, _, subject = proc.stdout.strip().partition("\x00")
            out[c] = (date, subject)
    return out


# --------------------------------------------------------------------------- all


def load_all(*, asv=None, gate=None, bench=None, logs=None, profiles=None,
             thresholds=None) -> Inputs:
    inputs = Inputs()
    loaders = [
        ("asv", lambda: load_asv(asv, inputs) if asv else inputs.missing.setdefault("asv", "not requested")),
        ("thresholds", lambda: load_thresholds(thresholds, inputs)),
    ]
    for kind, fn in loaders:
        try:
            fn()
        except Exception as exc:  # a reader bug must not take the whole report down
            inputs.skipped.append((kind, str(asv if kind == "asv" else thresholds),
                                   f"{type(exc).__name__}: {exc}"))
    rows = []
    for source, paths in (("gate", gate), ("bench", bench)):
        if not paths:
            inputs.missing[source] = "not requested"
            continue
        try:
            rows.extend(load_bench(source, paths, inputs))
        except Exception as exc:
            inputs.skipped.append((source, ", ".join(map(str, paths)), f"{type(exc).__name__}: {exc}"))
    inputs.runs = pd.DataFrame(rows)
    try:
        load_logs(expand_log_paths(logs or []), inputs)
    except Exception as exc:
        inputs.skipped.append(("telemetry log", ", ".join(map(str, logs or [])), f"{type(exc).__name__}: {exc}"))
    if profiles:
        try:
            load_profiles(profiles, inputs)
        except Exception as exc:
            inputs.skipped.append(("profile", str(profiles), f"{type(exc).__name__}: {exc}"))
    else:
        inputs.missing["profiles"] = "not requested"
    return inputs
