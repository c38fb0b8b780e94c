#!/usr/bin/env python3
"""Time covertreex on the named presets of DESIGN section 6 against exact references.

For each preset, in one process: tree build time, query time, queries/s, recall against the
float64 brute-force reference (covertreex.reference.check_*_knn), and the reference's own time
for the same queries: the float64 brute force (residual presets) or scipy cKDTree with 2 and 1
workers (euclid-32k). Numba is warmed up first on a tiny data set of each metric, and that
warm-up time is reported on its own. The residual backend (V, p) is built once per preset and
counted in neither the tree nor the reference time.

Targets (PASS/FAIL):
  every preset      recall 1.000
  vecchia-d3        (build + queries) / reference <= 0.5
  gold-d3           build + queries <= reference + 5 s
  gold-d8           build < 20 s
  euclid-32k        queries <= 2 x cKDTree (2 workers) queries; build < 1 s

Examples:
  python benchmarks/presets.py                       # gold-d3 gold-d8 euclid-32k vecchia-d3
  python benchmarks/presets.py --preset quick --check
  python benchmarks/presets.py --preset gold-d8 --repeat 3 --json out/gold-d8.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
import traceback

import numpy as np

DEFAULT_PRESETS = ("gold-d3", "gold-d8", "euclid-32k", "vecchia-d3")
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMBA_THREADING_LAYER",
    "NUMBA_CACHE_DIR",
)
WARMUP_N = 1100  # three batches of 512: exercises the multi-batch insertion paths
WARMUP_QUERIES = 64
GOLD_D3_SLACK_S = 5.0


# --------------------------------------------------------------------------- reporting helpers


def _versions() -> dict:
    import numba
    import scipy

    import covertreex

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "covertreex": getattr(covertreex, "__version__", None),
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # the layout of show_config differs between numpy builds
        info["blas"] = None
    return info


def _threads() -> dict:
    import numba

    info = {name: os.environ.get(name) for name in THREAD_ENV}
    info["numba.get_num_threads"] = numba.get_num_threads()
    info["numba.config.NUMBA_NUM_THREADS"] = numba.config.NUMBA_NUM_THREADS
    try:
        # Only known once a parallel kernel has run, i.e. after the warm-up.
        info["numba.threading_layer"] = numba.threading_layer()
    except ValueError:
        info["numba.threading_layer"] = None
    try:
        from threadpoolctl import threadpool_info

        info["blas_threads"] = [
            f"{p.get('internal_api')}:{p.get('num_threads')}" for p in threadpool_info()
        ]
    except ImportError:
        info["blas_threads"] = None
    info["covertreex_env"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith("COVERTREEX_")}
    return info


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _timed(fn, repeat: int):
    """Run fn() `repeat` times; return (last result, median seconds, all seconds)."""
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times), times


# --------------------------------------------------------------------------- the measured steps


def _make_tree(preset):
    from covertreex import CoverTree, Runtime

    return CoverTree(
        Runtime(
            metric=preset.metric,
            batch_size=preset.batch_size,
            batch_order="hilbert",
            seed=preset.seed,
        )
    )


def _fit(preset, workload):
    return _make_tree(preset).fit(workload.fit_input)


def _query(preset, workload, tree):
    return tree.knn(
        workload.knn_queries,
        k=preset.k,
        predecessor_mode=preset.predecessor_mode,
        return_distances=True,
    )


def _recall(preset, workload, idx) -> float:
    from covertreex import reference

    if preset.is_residual:
        return float(
            reference.check_residual_knn(
                workload.backend,
                workload.query_ids,
                idx,
                k=preset.k,
                predecessor_mode=preset.predecessor_mode,
                strict=False,
            )
        )
    return float(
        reference.check_euclidean_knn(
            workload.points,
            workload.queries,
            idx,
            k=preset.k,
            predecessor_mode=preset.predecessor_mode,
            strict=False,
        )
    )


def _residual_reference(preset, workload):
    from covertreex import reference

    return reference.residual_knn(
        workload.backend,
        workload.query_ids,
        k=preset.k,
        predecessor_mode=preset.predecessor_mode,
    )


def _ckdtree(preset, workload, workers: int, repeat: int) -> dict:
    from scipy.spatial import cKDTree

    kd, build_s, _ = _timed(lambda: cKDTree(workload.points), repeat)
    _, query_s, _ = _timed(lambda: kd.query(workload.queries, k=preset.k, workers=workers), repeat)
    return {"build_s": build_s, "query_s": query_s}


def warm_up(presets) -> dict:
    """Compile the Numba kernels on tiny data sets: one per (metric, predecessor mode) in use."""
    from covertreex.workloads import load_workload, scaled

    seen = {}
    for preset in presets:
        key = (preset.metric, preset.predecessor_mode)
        if key in seen:
            continue
        small = scaled(preset, WARMUP_N, None if preset.queries_all else WARMUP_QUERIES)
        t0 = time.perf_counter()
        workload = load_workload(small)
        tree = _fit(small, workload)
        idx, _ = _query(small, workload, tree)
        _recall(small, workload, idx)
        if small.is_residual:
            _residual_reference(small, workload)
        seen[key] = time.perf_counter() - t0
        _say(f"  warm-up {preset.metric:<22s} predecessor={preset.predecessor_mode!s:<5s} {seen[key]:8.2f} s")
    return {f"{m}{' predecessor' if pm else ''}": s for (m, pm), s in seen.items()}


def run_preset(preset, repeat: int) -> dict:
    """All figures of one preset; the keys are what --json writes."""
    from covertreex.workloads import load_workload

    row = {"preset": preset.name, "metric": preset.metric, "n": preset.n, "d": preset.d,
           "k": preset.k, "queries": preset.queries, "predecessor_mode": preset.predecessor_mode,
           "repeat": repeat}
    t0 = time.perf_counter()
    workload = load_workload(preset)
    row["data_s"] = time.perf_counter() - t0  # points, queries and (residual) the backend V, p

    tree, row["build_s"], row["build_all_s"] = _timed(lambda: _fit(preset, workload), repeat)
    (idx, _dist), row["query_s"], row["query_all_s"] = _timed(
        lambda: _query(preset, workload, tree), repeat
    )
    row["build_query_s"] = row["build_s"] + row["query_s"]
    row["queries_per_s"] = preset.queries / max(row["query_s"], 1e-9)
    t0 = time.perf_counter()
    row["recall"] = _recall(preset, workload, idx)
    row["recall_check_s"] = time.perf_counter() - t0

    if preset.is_residual:
        _, row["reference_s"], row["reference_all_s"] = _timed(
            lambda: _residual_reference(preset, workload), repeat
        )
    else:
        kd2 = _ckdtree(preset, workload, workers=2, repeat=repeat)
        kd1 = _ckdtree(preset, workload, workers=1, repeat=repeat)
        row["ckdtree_build_s"] = kd2["build_s"]
        row["ckdtree_w2_query_s"] = kd2["query_s"]
        row["ckdtree_w1_query_s"] = kd1["query_s"]
        row["reference_s"] = kd2["query_s"]
    return row


# --------------------------------------------------------------------------- targets


def _fmt_recall(v: float) -> str:
    """1.000 only when exact; otherwise truncated (not rounded) so 0.9999996 never shows as 1.000."""
    return "1.000" if v >= 1.0 else f"{math.floor(v * 1e6) / 1e6:.6f}"


def _fmt(spec: str):
    return spec.format


def targets_for(row: dict) -> list[dict]:
    """The PASS/FAIL targets of one preset's figures."""
    name = row["preset"]
    out = [{"preset": name, "target": "recall", "value": row["recall"], "limit": "= 1.000",
            "ok": row["recall"] >= 1.0, "fmt": _fmt_recall}]
    if name == "vecchia-d3":
        ratio = row["build_query_s"] / row["reference_s"]
        out.append({"preset": name, "target": "(build+queries) / reference", "value": ratio,
                    "limit": "<= 0.5", "ok": ratio <= 0.5, "fmt": _fmt("{:.3f}")})
    elif name == "gold-d3":
        excess = row["build_query_s"] - row["reference_s"]
        out.append({"preset": name, "target": "(build+queries) - reference [s]", "value": excess,
                    "limit": f"<= {GOLD_D3_SLACK_S:g}", "ok": excess <= GOLD_D3_SLACK_S,
                    "fmt": _fmt("{:+.2f}")})
    elif name == "gold-d8":
        out.append({"preset": name, "target": "build [s]", "value": row["build_s"],
                    "limit": "< 20", "ok": row["build_s"] < 20.0, "fmt": _fmt("{:.2f}")})
    elif name == "euclid-32k":
        ratio = row["query_s"] / row["ckdtree_w2_query_s"]
        out.append({"preset": name, "target": "queries / cKDTree(2 workers)", "value": ratio,
                    "limit": "<= 2", "ok": ratio <= 2.0, "fmt": _fmt("{:.2f}")})
        out.append({"preset": name, "target": "build [s]", "value": row["build_s"],
                    "limit": "< 1", "ok": row["build_s"] < 1.0, "fmt": _fmt("{:.3f}")})
    return out


def _table(rows: list[dict], errors: dict, targets: list[dict]) -> str:
    def f(v, spec="{:.3f}"):
        return "-" if v is None else spec.format(v)

    head = ("preset", "build s", "query s", "queries/s", "recall", "ref s", "ref")
    lines = [head]
    for r in rows:
        ref = "cKDTree w2" if r["metric"] == "euclidean" else "brute f64"
        lines.append((r["preset"], f(r["build_s"]), f(r["query_s"]), f(r["queries_per_s"], "{:.0f}"),
                      _fmt_recall(r["recall"]), f(r["reference_s"]), ref))
    for name in errors:
        lines.append((name, "ERROR", "-", "-", "-", "-", "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))

    text.append("")
    tl = [("preset", "target", "value", "limit", "status")]
    for t in targets:
        tl.append((t["preset"], t["target"], t["fmt"](t["value"]), t["limit"],
                   "PASS" if t["ok"] else "FAIL"))
    for name, err in errors.items():
        tl.append((name, "run", "error", "-", "FAIL"))
    tw = [max(len(line[i]) for line in tl) for i in range(len(tl[0]))]
    tt = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, tw)))
          for line in tl]
    tt.insert(1, "  ".join("-" * w for w in tw))
    return "\n".join(text + tt)


def _print_row(r: dict) -> None:
    _say(f"  data (points, queries{', backend V/p' if r['metric'] != 'euclidean' else ''}): "
         f"{r['data_s']:.3f} s")
    _say(f"  tree build:   {r['build_s']:.3f} s")
    _say(f"  queries:      {r['query_s']:.3f} s  ({r['queries']} queries, {r['queries_per_s']:.0f} queries/s)")
    _say(f"  build+query:  {r['build_query_s']:.3f} s")
    _say(f"  recall:       {_fmt_recall(r['recall'])}  (check took {r['recall_check_s']:.2f} s)")
    if r["metric"] == "euclidean":
        _say(f"  cKDTree:      build {r['ckdtree_build_s']:.4f} s, queries {r['ckdtree_w2_query_s']:.4f} s "
             f"(2 workers), {r['ckdtree_w1_query_s']:.4f} s (1 worker)")
    else:
        _say(f"  reference:    {r['reference_s']:.3f} s  (float64 brute force, same queries)")
    for t in targets_for(r):
        _say(f"  target {t['target']}: {t['fmt'](t['value'])} {t['limit']}  "
             f"{'PASS' if t['ok'] else 'FAIL'}")


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    from covertreex.workloads import PRESETS

    parser = argparse.ArgumentParser(
        prog="benchmarks/presets.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset", action="append", choices=list(PRESETS), metavar="NAME",
        help=f"preset to run; repeat for several. Known: {', '.join(PRESETS)}. "
             f"Default: {' '.join(DEFAULT_PRESETS)}",
    )
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each step this many times and report the median (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when any target fails (otherwise only errors do)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if not args.preset:
        args.preset = list(DEFAULT_PRESETS)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from covertreex.workloads import get_preset

    presets = [get_preset(name) for name in dict.fromkeys(args.preset)]  # keep order, drop repeats
    command = shlex.join([sys.executable] + sys.argv)

    _say(f"command: {command}")
    versions = _versions()
    _say("versions: " + ", ".join(f"{k}={v}" for k, v in versions.items()))
    _say("threads (before warm-up): " + ", ".join(f"{k}={v}" for k, v in _threads().items()))
    _say(f"presets: {' '.join(p.name for p in presets)}; repeat={args.repeat}")
    _say()

    _say("warm-up (Numba JIT on tiny data sets, not counted below):")
    t0 = time.perf_counter()
    try:
        warmup = warm_up(presets)
    except Exception:
        traceback.print_exc()
        _say("warm-up failed; nothing measured")
        return 1
    warmup_total = time.perf_counter() - t0
    _say(f"  total {warmup_total:.2f} s")
    threads = _threads()
    _say("threads (after warm-up): " + ", ".join(f"{k}={v}" for k, v in threads.items()))

    rows, errors, targets = [], {}, []
    for preset in presets:
        _say()
        _say(f"== {preset.name}: {preset.metric}, n={preset.n}, d={preset.d}, k={preset.k}, "
             f"queries={'all' if preset.queries_all else preset.queries}, "
             f"inducing={preset.inducing}, predecessor_mode={preset.predecessor_mode}")
        try:
            row = run_preset(preset, args.repeat)
        except Exception as exc:
            traceback.print_exc()
            errors[preset.name] = f"{type(exc).__name__}: {exc}"
            continue
        rows.append(row)
        targets.extend(targets_for(row))
        _print_row(row)

    _say()
    _say(f"command: {command}")
    _say(_table(rows, errors, targets))
    failed = [t for t in targets if not t["ok"]]
    _say()
    _say(f"{len(targets) - len(failed)}/{len(targets)} targets pass"
         + (f", {len(errors)} preset(s) failed to run" if errors else ""))

    if args.json:
        payload = {
            "command": command,
            "versions": versions,
            "threads": threads,
            "warmup_s": warmup,
            "warmup_total_s": warmup_total,
            "results": rows,
            "errors": errors,
            "targets": [{k: v for k, v in t.items() if k != "fmt"} for t in targets],
        }
        directory = os.path.dirname(args.json)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
        _say(f"figures written to {args.json}")

    if errors or (args.check and failed):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
