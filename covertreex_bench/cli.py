"""The ``covertreex`` command (also ``python -m covertreex_bench``): bench | calibrate | diagnostics |
profile | report.

``profile`` and ``report`` parse their own arguments: ``main`` hands everything after the
subcommand name to ``covertreex_bench.profiling.cli.main`` or ``covertreex_bench.report_cli.main``.

Errors in the request (unknown preset or phase, bad number, unwritable path, unreadable log)
give one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

PROG = "covertreex"

# Subcommands that parse their own arguments (and their own --help): name -> one-line help.
OWN_PARSERS = {
    "profile": "pyinstrument profiles and GIL / Python-callout probes",
    "report": "static HTML regression report",
}

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad request: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# --------------------------------------------------------------------------- parser

BENCH_DESCRIPTION = """\
Build and query one named workload (covertreex_bench.workloads: the presets asv and the gates use)
and print build wall, query wall, queries/s, recall, the per-batch telemetry medians and one
PASS/FAIL verdict per threshold of the thresholds file (the one shipped with covertreex_bench,
or --thresholds PATH).

Before anything is timed, Numba is warmed up on a tiny instance of the same metric and phases;
the warm-up time is reported on its own. Every long phase (data and backend, build, queries,
the single-row sample and the reference) shows a progress line with an ETA on stderr when it
is a terminal, and nothing otherwise; the tables go to stdout."""

BENCH_EPILOG = """\
presets:
  quick        residual RBF, n=4096, d=3, 256 inducing, 256 query ids, k=50 (CI; 20-40 s)
  gold-d3      residual RBF, n=32768, d=3, 512 inducing, 1024 query ids, k=50
  gold-d8      residual RBF, n=32768, d=8, 512 inducing, 1024 query ids, k=8
  vecchia-d3   residual RBF, predecessor mode, every point queried, k=50
  vecchia-65k, vecchia-131k   vecchia-d3 at n=65536 and n=131072 (minutes per run)
  euclid-32k   euclidean, n=32768, d=8, 1024 fresh queries, k=8

phases (audit plan phases 1-7, docs/design.md, "Audit phases"):
  all | baseline | ladder | NAME=0|1,...   names: block_gemm gemm_kernel_provider
  pairwise_reuse float32_staging topk_selection nopython_chunk_loop thread_guard.
  A NAME=0|1 list is applied to "all". Without --phases, COVERTREEX_PHASE_<NAME>=0|1
  environment variables apply. "ladder" runs baseline, +1, +1+2, ... +7 and prints one row
  per step with ratios against the step before. Its steps take turns: --repeat N makes N
  rounds of one build and query per step (forward, then backward), so load that drifts
  during the minutes a ladder takes falls on every step alike.

threads (audit phase 7 thread guard):
  By default the bench pins BLAS/OpenMP (threadpoolctl) to one thread and Numba to one
  thread per core available to the process (--threads N for another count): the
  residual tiles are small GEMMs between Numba loops, where two BLAS threads made builds
  2-4x slower. Blocked walks run N blocks side by side, one per thread, so each core
  runs its own single-threaded GEMMs. The brute-force reference gets N BLAS threads and
  cKDTree N workers: every method uses the same cores. The guard pins the libraries
  through threadpoolctl and Numba, not through the environment; OMP_NUM_THREADS,
  OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and NUMBA_NUM_THREADS that you set are honoured,
  never overridden. --no-thread-guard leaves the libraries at their own defaults.

output:
  --json PATH  one object: preset, metric, n, d, k, queries, phases, build_wall_ms,
               query_wall_ms, recall (null without --check), reference_ms, the build
               summary (per-figure sums and medians), verdicts, environment, git_commit.
               With --phases ladder: one such object per step under "steps".
  --log PATH   the telemetry JSON lines (one per batch, build and query run; overwritten);
               `covertreex diagnostics PATH` turns it into a CSV.

dask (pip install 'covertreex[dask]'; docs/distributed.md):
  --dask local:N     the queries run again on a LocalCluster of N single-threaded worker
                     processes, started and stopped by the bench
  --dask tcp://H:P   ... on the cluster of a running scheduler
  The tree is built and queried here first: those local queries, on the library's own
  threads, are the baseline. The printed and recorded query figures, recall and telemetry
  are then the cluster's; the JSON's "dask" entry names the workers, the bytes each holds,
  and the query speed-up over the local queries.

reference (--check):
  The float64 brute force of covertreex.reference on the same queries, on the same cores.
  vecchia-65k and vecchia-131k run it on every 4th and 8th block of 256 ids only: its time
  is scaled up by the block sizes to the whole job, recall is checked on those rows, and
  the output and the JSON's "reference_sampling" say so. Residual presets also walk a
  sample of rows one at a time, for the blocked / single-row pairs figure.

query figures (JSON "query"): pairs per row and against the brute force's, tile ms (thread
  time), the tiles' GFLOP/s against a DGEMM of the tile's shape timed in the same run
  (gemm_share), blocked / single-row pairs, and peak_rss_mb (the process's peak after the
  build and queries, before the reference).

exit status: 0 every verdict PASS (or SKIP), 1 a verdict FAILs or the run failed,
2 a bad request (unknown preset or phase, bad path, ...).

examples:
  covertreex bench --preset quick --check
  covertreex bench --preset gold-d3 --check --repeat 3 --json out/gold-d3.json
  covertreex bench --preset quick --phases ladder --check
  covertreex bench --preset quick --phases block_gemm=0,float32_staging=0
  covertreex bench --preset gold-d8 --log out/gold-d8.jsonl && covertreex diagnostics out/gold-d8.jsonl
  OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 covertreex bench --preset quick   # single-threaded
  covertreex bench --preset quick --check --dask local:2
"""

DIAG_DESCRIPTION = """\
Turn telemetry JSONL logs (covertreex bench --log) into a CSV table, one row per log: sums and
medians of every batch figure (overall and over dominated batches), the share of traversal time
that the whitened-block and kernel-provider counters cover (audit phase 0: >= 0.8), and the
count of residual batches after the first of their build that logged conflict_pairwise_reused=0
(audit phase 3: must be 0; builds with the pairwise_reuse phase off are counted separately)."""

DIAG_EPILOG = """\
exit status: 0 all logs pass, 1 a log has residual batches that did not reuse their pairwise
distances (message on stderr, CSV still written), 2 a log cannot be read.

examples:
  covertreex diagnostics out/quick.jsonl
  covertreex diagnostics out/*.jsonl --out out/diagnostics.csv
"""


CALIBRATE_DESCRIPTION = """\
Measure this machine and write its limits: every preset of a thresholds table with a
gate = "calibrated" entry is built and queried --runs times, and each such figure's limit (the
worst run times 3, or divided by 3 for a lower limit) goes to ~/.covertreex/machines/<machine>.toml
($COVERTREEX_MACHINE_DIR, $COVERTREEX_MACHINE override folder and name; the name is asv's
machine name when ~/.asv-machine.json has one). `covertreex bench` and the pytest gate read it."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="covertreex: exact kNN with a parallel compressed cover tree; benchmark harness.",
        epilog="Run `covertreex COMMAND --help` for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    bench = sub.add_parser("bench", help="time a named workload, check recall, judge thresholds",
                           description=BENCH_DESCRIPTION, epilog=BENCH_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--preset", required=True, metavar="NAME",
                       help="workload to run (see presets below)")
    bench.add_argument("--phases", default=None, metavar="SPEC",
                       help="all | baseline | ladder | NAME=0|1,... (default: all, or the "
                            "COVERTREEX_PHASE_* environment)")
    bench.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                       help="build and query N times, report medians (default 1)")
    bench.add_argument("--check", action="store_true",
                       help="compute recall against the float64 brute-force reference "
                            "(covertreex.reference; sampled for vecchia-65k/131k, see "
                            "'reference' below) and print the reference's own time")
    bench.add_argument("--json", metavar="PATH", help="write every figure to PATH as one JSON object")
    bench.add_argument("--log", metavar="PATH", help="write the per-batch telemetry JSON lines to PATH")
    bench.add_argument("--threads", type=_positive_int, metavar="N",
                       help="Numba threads and blocked-walk workers under the thread guard "
                            "(default: the cores available; the tree's BLAS stays at 1, the "
                            "reference gets N BLAS threads)")
    bench.add_argument("--no-thread-guard", action="store_true",
                       help="do not pin BLAS/OpenMP/Numba threads (library defaults)")
    bench.add_argument("--thresholds", metavar="PATH",
                       help="thresholds file (default: the one shipped with covertreex_bench)")
    bench.add_argument("--quiet", action="store_true", help="no progress or warm-up lines on stderr")
    bench.add_argument("--dask", metavar="SPEC", default=None,
                       help="also run the queries on a Dask cluster: local:N or tcp://host:port")
    # Undocumented, for tests and quick experiments: a scaled-down copy of the preset
    # (workloads.scaled); the JSON says "scaled": true and verdicts do not set the exit code.
    bench.add_argument("--n", type=_positive_int, default=None, help=argparse.SUPPRESS)
    bench.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)

    cal = sub.add_parser("calibrate", help="measure this machine, write its limits (make calibrate)",
                         description=CALIBRATE_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    cal.add_argument("--runs", type=_positive_int, default=None, metavar="N",
                     help="build and query runs per preset (default 5)")
    cal.add_argument("--thresholds", metavar="PATH",
                     help="thresholds file naming the calibrated gates (default: the shipped one)")
    cal.add_argument("--out", metavar="PATH", help="machine file (default: this machine's, see above)")

    diag = sub.add_parser("diagnostics", help="telemetry JSONL logs to CSV; fails on missing reuse",
                          description=DIAG_DESCRIPTION, epilog=DIAG_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    diag.add_argument("logs", nargs="+", metavar="LOG", help="JSONL log written by `covertreex bench --log`")
    diag.add_argument("--out", metavar="PATH", help="write the CSV here instead of stdout")

    for name, text in OWN_PARSERS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def run_own_parser(name: str, argv: list[str]) -> int:
    """``covertreex profile|report ARGS``: the subcommand's main parses ARGS itself."""
    if name == "profile":
        from .profiling.cli import main as command
    else:
        from .report_cli import main as command
    rc = command(list(argv))
    return int(rc) if rc is not None else EXIT_OK


# --------------------------------------------------------------------------- helpers


def _check_output(path: str, option: str) -> Path:
    """The path of an output file, its folder created; UsageError when it cannot be written."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create folder {parent}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")
    return p


def _stderr(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def _apply_thread_guard(threads):
    from covertreex.threads import configure_threading

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        in_force = configure_threading(threads)
    notes = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    return in_force, notes


def _write_json(path: Path, payload) -> None:
    import json

    from .common import write_atomic

    write_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------- commands


def cmd_bench(args) -> int:
    with warnings.catch_warnings():
        # Runtime warns about unknown COVERTREEX_* variables at import; keep it to one line.
        warnings.simplefilter("ignore", RuntimeWarning)
        from . import bench, console, environment, runtime, thresholds as thresholds_file
    from covertreex.phases import Phases

    say = (lambda msg: None) if args.quiet else _stderr

    # --- validate the whole request before anything slow runs
    try:
        preset, scaled = bench.resolve_preset(args.preset, args.n)
    except bench.BenchError as exc:
        raise UsageError(str(exc)) from None
    ladder = args.phases is not None and args.phases.strip() == "ladder"
    phases = None
    if args.phases is not None and not ladder:
        try:
            phases = Phases.parse(args.phases)
        except ValueError as exc:
            raise UsageError(f"--phases: {exc}") from None
    json_path = _check_output(args.json, "--json") if args.json else None
    log_path = _check_output(args.log, "--log") if args.log else None
    if json_path is not None and log_path is not None and json_path.resolve() == log_path.resolve():
        raise UsageError("--json and --log name the same file")
    try:
        thresholds = thresholds_file.load(args.thresholds)
    except thresholds_file.ThresholdsError as exc:
        raise UsageError(str(exc)) from None
    try:
        runtime.make_runtime(preset, phases, args.threads)  # COVERTREEX_* environment errors
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if args.dask is not None:
        from . import dask_bench

        if ladder:
            raise UsageError("--dask runs one phase set; it cannot be combined with --phases ladder")
        try:
            dask_bench.parse_spec(args.dask)
        except bench.BenchError as exc:
            raise UsageError(str(exc)) from None

    if not args.no_thread_guard:
        in_force, notes = _apply_thread_guard(args.threads)
        for note in notes:
            say(f"note: {note}")
        say("threads: " + ", ".join(f"{k}={v}" for k, v in in_force.items()))

    # --- run
    records = [] if log_path is not None else None
    common = dict(repeat=args.repeat, check=args.check, threads=args.threads, scaled=scaled,
                  progress=not args.quiet, log_records=records, thresholds=thresholds, say=say)
    start = time.perf_counter()
    if ladder:
        result = bench.run_ladder(preset, **common)
        final = result["steps"][-1]
        print(console.format_ladder(result))
        print()
        print(console.format_result(final))
        verdicts = final.get("verdicts") or []
    else:
        with (dask_bench.open_client(args.dask) if args.dask is not None
              else contextlib.nullcontext()) as client:
            result = bench.run_preset(preset, phases=phases, client=client, **common)
        print(console.format_result(result))
        verdicts = result.get("verdicts") or []
    total = time.perf_counter() - start
    say(f"total {total:.1f} s (warm-up, data, builds, queries, reference)")

    # --- write
    if json_path is not None:
        environment.attach_context(result)
        result["command"] = ["covertreex", "bench"] + list(args.argv)
        try:
            _write_json(json_path, result)
        except OSError as exc:
            raise UsageError(f"--json {json_path}: {exc.strerror or exc}") from None
        say(f"figures written to {json_path}")
    if log_path is not None:
        import json

        from .common import write_atomic

        try:
            # One JSON object a line, as covertreex.telemetry.write_jsonl writes them, in one step.
            write_atomic(log_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        except OSError as exc:
            raise UsageError(f"--log {log_path}: {exc.strerror or exc}") from None
        say(f"telemetry written to {log_path} ({len(records)} records)")

    if scaled:
        return EXIT_OK
    return EXIT_FAIL if any(v["status"] == "FAIL" for v in verdicts) else EXIT_OK


def cmd_diagnostics(args) -> int:
    from . import diagnostics

    out = _check_output(args.out, "--out") if args.out else None
    try:
        return diagnostics.run(args.logs, out)
    except diagnostics.DiagnosticsError as exc:
        raise UsageError(str(exc)) from None


def cmd_calibrate(args) -> int:
    from . import calibrate
    from .common import BenchError

    try:
        path = calibrate.calibrate(args.runs or calibrate.DEFAULT_RUNS, args.thresholds, args.out,
                                   say=_stderr)
    except BenchError as exc:
        raise UsageError(str(exc)) from None
    print(f"machine limits of {calibrate.machine_name()} written to {path}")
    print(path.read_text(encoding="utf-8"), end="")
    return EXIT_OK


COMMANDS = {"bench": cmd_bench, "calibrate": cmd_calibrate, "diagnostics": cmd_diagnostics}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # These subcommands take their arguments verbatim (their own parsers, their own --help).
    if argv and argv[0] in OWN_PARSERS:
        return run_own_parser(argv[0], argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.argv = argv[1:]
    command = COMMANDS[args.command]
    try:
        return command(args)
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a failed run: one line unless --traceback
        if getattr(args, "traceback", False):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{PROG} {args.command}: error: {type(exc).__name__}: {message} "
              f"(rerun with --traceback for details)" if args.command == "bench" else
              f"{PROG} {args.command}: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return EXIT_FAIL

