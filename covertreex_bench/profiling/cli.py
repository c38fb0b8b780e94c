"""``covertreex profile``: pyinstrument captures plus GIL and Python-callout evidence.

    covertreex profile --preset NAME [--out DIR] [--phases all|baseline|both]

Writes, into DIR (default ``profiling/out/<preset>``), per phase setting the pyinstrument
HTML, session, JSON and speedscope files, and one ``summary.json`` (structure in
``covertreex_bench.profiling``). Exit status 0 when the static scan finds every compiled hot kernel
clean, 1 when it finds a hot-path GIL or Python call, 2 on a bad request.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from ..common import INSTALL_HINT, parse_arguments, write_atomic
from ..environment import environment, git_info
from . import SCHEMA_ID, SCHEMA_VERSION

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Profile a build plus its queries with pyinstrument (Numba warmed up first) under the audit
phases all and/or baseline, split the build's hot-phase time into covertreex Python, Numba
kernels, numpy/BLAS and other (the Python-callout evidence), and collect GIL evidence for
every hot Numba kernel: a static scan of the compiled LLVM IR, a 1 ms heartbeat thread's
longest pause, the two-thread speedup, and py-spy --gil figures when py-spy is on PATH."""

EPILOG = """\
output (DIR):
  <preset>-<phases>.html             pyinstrument HTML (offline)
  <preset>-<phases>.pyisession       pyinstrument session (pyinstrument --load FILE)
  <preset>-<phases>.json             pyinstrument JSON renderer (frame tree)
  <preset>-<phases>.speedscope.json  speedscope profile
  summary.json                       every figure (structure: python -c 'import covertreex_bench.profiling as p; help(p)')

exit status: 0 every compiled hot kernel passes the static scan, 1 one does not (or a
capture failed), 2 a bad request.

examples:
  covertreex profile --preset quick
  covertreex profile --preset gold-d3 --phases all --out profiling/out/gold-d3
  covertreex profile --preset quick --no-gil          # captures only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, metavar="NAME",
                        help="named workload (covertreex_bench.workloads.PRESETS)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: profiling/out/<preset>)")
    parser.add_argument("--phases", choices=("all", "baseline", "both"), default="both",
                        help="phase settings to profile (default: both)")
    parser.add_argument("--interval", type=float, default=0.001, metavar="S",
                        help="pyinstrument sampling interval in seconds (default 0.001)")
    parser.add_argument("--no-gil", action="store_true",
                        help="skip the GIL probes (static scan, heartbeat, two threads, py-spy)")
    parser.add_argument("--no-py-spy", action="store_true", help="skip only the py-spy probe")
    parser.add_argument("--gil-seconds", type=float, default=0.5, metavar="S",
                        help="minimum run time of each heartbeat / two-thread probe (default 0.5)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    # Hidden, for tests and quick runs: a scaled-down copy of the preset (workloads.scaled).
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--gil-n", type=int, default=8192, help=argparse.SUPPRESS)


def _json_default(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def _clean_floats(obj):
    """NaN/inf become null: the summary stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def resolve_preset(name: str, n: int | None, queries: int | None):
    from ..workloads import get_preset, scaled

    base = get_preset(name)
    if n is None and queries is None:
        return base, False
    size = base.n if n is None else n
    if size < 2:
        raise ValueError(f"--n must be >= 2, got {size}")
    if base.predecessor_mode or (base.queries_all and queries is None):
        return scaled(base, size), True
    return scaled(base, size, queries=min(queries or base.queries, size) if base.is_residual
                  else (queries or base.queries)), True


def run(args, say) -> tuple[dict, Path]:
    from covertreex.phases import Phases
    from ..workloads import load_workload
    from .capture import profile_phase
    from .gil import gil_evidence

    preset, scaled = resolve_preset(args.preset, args.n, args.queries)
    out_dir = Path(args.out) if args.out else Path("profiling") / "out" / args.preset
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = ("all", "baseline") if args.phases == "both" else (args.phases,)
    started = time.time()
    say(f"profile: loading {preset.name} (n={preset.n}, d={preset.d})")
    t0 = time.perf_counter()
    workload = load_workload(preset)
    data_ms = (time.perf_counter() - t0) * 1e3
    runs = []
    for label in labels:
        try:
            runs.append(profile_phase(preset, workload, Phases.parse(label), label, out_dir,
                                      interval=args.interval, say=say))
        except Exception as exc:
            runs.append({"phases": label, "error": f"{type(exc).__name__}: {exc}"})
            say(f"profile [{label}]: failed: {type(exc).__name__}: {exc}")
    comparison = {"region": "build_hot", "python_share": {}, "numba_share": {},
                  "numpy_blas_share": {}, "compiled_share": {}, "total_ms": {}}
    for entry in runs:
        region = (entry.get("callouts") or {}).get("build_hot") or {}
        if not region.get("total_ms"):
            region = (entry.get("callouts") or {}).get("build") or {}
        shares = region.get("shares") or {}
        comparison["python_share"][entry["phases"]] = shares.get("covertreex_python")
        comparison["numba_share"][entry["phases"]] = shares.get("numba_kernels")
        comparison["numpy_blas_share"][entry["phases"]] = shares.get("numpy_blas")
        comparison["compiled_share"][entry["phases"]] = region.get("compiled_share")
        comparison["total_ms"][entry["phases"]] = region.get("total_ms")
    if args.no_gil:
        gil = {"skipped": True, "note": "GIL probes not requested (--no-gil)"}
    else:
        try:
            gil = gil_evidence(args.preset, n=args.gil_n, seconds=args.gil_seconds, warm=True,
                               py_spy_probe=not args.no_py_spy, say=say)
        except Exception as exc:
            gil = {"skipped": True, "error": f"{type(exc).__name__}: {exc}",
                   "note": "GIL probes failed"}
    git = git_info()
    summary = {
        "schema": SCHEMA_ID,
        "version": SCHEMA_VERSION,
        "created_unix": started,
        "command": ["covertreex", "profile"] + list(getattr(args, "argv", []) or []),
        "preset": {"name": preset.name, "base": args.preset, "metric": preset.metric,
                   "n": preset.n, "d": preset.d, "k": preset.k, "queries": preset.queries,
                   "inducing": preset.inducing, "predecessor_mode": preset.predecessor_mode,
                   "scaled": scaled},
        "data_ms": data_ms,
        "environment": environment(),
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "runs": runs,
        "callout_comparison": comparison,
        "gil": gil,
    }
    path = out_dir / "summary.json"
    write_atomic(path, json.dumps(_clean_floats(summary), indent=2, default=_json_default) + "\n")
    return summary, path


def _ms(x) -> str:
    return "-" if x is None else f"{x:.1f} ms"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def print_summary(summary: dict, path: Path) -> None:
    out_dir = path.parent
    print(f"profile of {summary['preset']['name']} written to {out_dir}/")
    for entry in summary["runs"]:
        if "error" in entry:
            print(f"  [{entry['phases']}] failed: {entry['error']}")
            continue
        files = entry["files"]
        print(f"  [{entry['phases']}] build {entry['build_wall_ms']:.0f} ms, queries "
              f"{entry['query_wall_ms']:.0f} ms (under the profiler)")
        for kind in ("html", "session", "json", "speedscope"):
            print(f"      {kind:<10} {out_dir / files[kind]}")
    comp = summary["callout_comparison"]
    print(f"  build hot phase ({comp['region']}): share of sampled time")
    print(f"      {'phases':<10} {'python':>9} {'numba':>9} {'numpy/BLAS':>11}")
    for label in comp["python_share"]:
        print(f"      {label:<10} {_pct(comp['python_share'][label]):>9} "
              f"{_pct(comp['numba_share'][label]):>9} {_pct(comp['numpy_blas_share'][label]):>11}")
    gil = summary["gil"]
    if gil.get("skipped"):
        print(f"  GIL probes: skipped ({gil.get('error') or gil.get('note')})")
    else:
        from .gil import scan_counts
        from .probes import verdict_word

        print(f"  GIL static scan: {scan_counts(gil['kernels'])}")
        for hb in gil["heartbeat"]:
            if "error" in hb:
                print(f"      heartbeat {hb['scenario']}: error {hb['error']}")
                continue
            print(f"      heartbeat {hb['scenario']:<26} max gap {hb['max_gap_ms']:7.1f} ms "
                  f"(call {hb['call_ms_median']:.0f} ms, released at most {hb['limit_ms'] / 2:.1f} ms, "
                  f"held control {_ms(hb.get('held_gap_ms'))}): {verdict_word(hb['released'])}")
        for tt in gil["two_thread"]:
            if "error" in tt:
                continue
            print(f"      two threads {tt['scenario']:<24} speedup {tt['speedup']:.2f}x"
                  + (" (machine busy)" if tt.get("machine_busy") else ""))
        spy = gil.get("py_spy") or {}
        if spy.get("skipped"):
            print("      py-spy: " + spy.get("note", "skipped"))
        for run in spy.get("runs") or []:
            print(f"      py-spy {run['scenario']:<29} " + (
                f"error {run['error']}" if "error" in run else
                f"GIL held in {_pct(run.get('gil_share'))} of {run.get('samples')} samples"))
    print(f"summary: {path}")


def main(args=None) -> int:
    """Entry point: ``args`` is an argv list (as ``covertreex_bench.cli`` passes it), None for
    sys.argv, or a namespace already parsed by a parser that ``add_arguments`` filled."""
    args, status = parse_arguments(args, "covertreex profile", DESCRIPTION, EPILOG, add_arguments)
    if args is None:
        return status
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        from ..workloads import get_preset

        get_preset(args.preset)
        if args.interval <= 0:
            raise ValueError(f"--interval must be > 0, got {args.interval}")
        if args.n is not None and args.n < 2:
            raise ValueError(f"--n must be >= 2, got {args.n}")
    except ValueError as exc:
        print(f"covertreex profile: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        print(f"covertreex profile: error: pyinstrument is not installed ({INSTALL_HINT})",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        summary, path = run(args, say)
    except OSError as exc:
        print(f"covertreex profile: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_summary(summary, path)
    failed = any("error" in r for r in summary["runs"])
    gil = summary["gil"]
    if not gil.get("skipped") and not gil.get("llvm_clean"):
        failed = True
    return EXIT_FAIL if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
