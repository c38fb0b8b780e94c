"""``covertreex report``: one self-contained static HTML report.

Interface: ``add_arguments(parser)`` fills an argparse parser; ``main(args) -> int`` takes the
argv list after the subcommand name (what covertreex_bench.cli passes), None for sys.argv, or a
namespace parsed by a parser that ``add_arguments`` filled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import INSTALL_HINT, BenchError, check_writable, parse_arguments

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Build one static HTML report (index.html, inline CSS and SVG charts, no script and no network
request: it opens from file://) from asv results, bench / gate JSON (covertreex bench --json),
the gate's decisions (compare.json of perf/compare.py, which `make gate` writes to out/gate),
telemetry JSON lines (covertreex bench --log) and profile summaries (covertreex profile).
Every input is optional (a section without data says so), but at least one must exist: the
defaults are the folders of a repository checkout, so elsewhere name the inputs."""

EPILOG = """\
sections: trends per commit (traversal_ms, whitened_block_ms, kernel_provider_ms,
conflict_graph_ms, build wall, query wall, peak memory) with the thresholds of the
thresholds file; the phase ladder; a regression table against the previous and the base
commit (red above the thresholds file's [compare] min_effect, default 1.5); one verdict per audit
threshold; the gate's decisions, one row a figure (medians, ratio, 95 % interval, p, verdict);
telemetry; pyinstrument profiles with the Python-callout and GIL evidence; the
machines and environments behind the figures; the inputs read and skipped.

exit status: 0 report written, 2 a bad request (a named input that does not exist, a bad
thresholds file, an unknown --base commit, an output folder that cannot be written) or none
of the default inputs exists; every request is checked before any input is read.

examples:
  covertreex report
  covertreex report --out reports/out --asv asv_bench/results --bench out/bench --gate out/gate
  covertreex report --base 0dfee86 --logs out/bench/*.jsonl
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports/out", metavar="DIR",
                        help="output folder (default reports/out); index.html goes there")
    parser.add_argument("--asv", default=None, metavar="DIR",
                        help="asv results folder (default asv_bench/results)")
    parser.add_argument("--gate", action="append", default=None, metavar="PATH",
                        help="gate JSON file or folder (repeatable; default out/gate)")
    parser.add_argument("--bench", action="append", default=None, metavar="PATH",
                        help="bench JSON file or folder (repeatable; default out/bench)")
    parser.add_argument("--logs", nargs="*", default=None, metavar="LOG",
                        help="telemetry JSONL files, folders or globs (default: *.jsonl under "
                             "the gate and bench folders)")
    parser.add_argument("--profiles", default=None, metavar="DIR",
                        help="folder searched for profile summary.json files (default profiling/out)")
    parser.add_argument("--thresholds", default=None, metavar="PATH",
                        help="thresholds file (default: the one shipped with covertreex_bench)")
    parser.add_argument("--base", default=None, metavar="COMMIT",
                        help="commit (prefix) the regression table compares against "
                             "(default: the first commit with data)")
    parser.add_argument("--quiet", action="store_true", help="print only the report path")


def main(args=None) -> int:
    args, status = parse_arguments(args, "covertreex report", DESCRIPTION, EPILOG, add_arguments)
    if args is None:
        return status
    try:
        from .reports import build_report
    except ImportError as exc:
        print(f"covertreex report: error: {exc.name or exc} is not installed; the report needs "
              f"the harness extras ({INSTALL_HINT})", file=sys.stderr)
        return EXIT_USAGE

    try:
        inputs = _check_request(args)
    except BenchError as exc:
        print(f"covertreex report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    gate, bench, logs = inputs
    out = Path(args.out)
    try:
        index = build_report(out, asv=args.asv, gate=gate, bench=bench, logs=logs,
                             profiles=args.profiles, thresholds=args.thresholds, base=args.base)
    except OSError as exc:
        print(f"covertreex report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.quiet:
        print("report written (open it from file://, it needs no network):", file=sys.stderr)
    print(index.resolve())
    return EXIT_OK


def _check_request(args):
    """(gate, bench, logs) paths after checking the whole request: every input named on the
    command line exists (the defaults may be absent, but not all of them), the thresholds file
    loads, --base is a commit of the repository here and the output folder is writable.
    BenchError naming the option and the fix otherwise. Fills args.asv / profiles / thresholds."""
    import subprocess

    from . import thresholds

    for option, value in (("--asv", args.asv), ("--profiles", args.profiles)):
        if value is not None and not Path(value).is_dir():
            raise BenchError(f"{option} {value}: no such folder; name an existing one or leave the "
                             f"option out ({'run `make asv` to fill asv_bench/results' if option == '--asv' else 'run `make profile`'})")
    for option, values in (("--gate", args.gate), ("--bench", args.bench), ("--logs", args.logs)):
        missing = [v for v in values or () if not _exists(v)]
        if missing:
            raise BenchError(f"{option} {' '.join(missing)}: no such file or folder; name existing "
                             f"ones or leave the option out")
    args.asv = args.asv or "asv_bench/results"
    args.profiles = args.profiles or "profiling/out"
    gate = args.gate if args.gate is not None else ["out/gate"]
    bench = args.bench if args.bench is not None else ["out/bench"]
    logs = args.logs if args.logs else [str(Path(p)) for p in gate + bench]
    named = {"--asv": [args.asv], "--gate": gate, "--bench": bench, "--logs": logs,
             "--profiles": [args.profiles]}
    if not any(_exists(path) for paths in named.values() for path in paths):
        looked = "; ".join(f"{option} {' '.join(map(str, paths)) or '(none)'}"
                           for option, paths in named.items())
        raise BenchError(f"nothing to report: none of the inputs exists ({looked}); run it in the "
                         "repository checkout or name the inputs with these options")
    thresholds.load(args.thresholds)
    if args.thresholds is None:
        args.thresholds = thresholds.default_path()
    if args.base is not None:
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"--base {args.base}: not a commit of the repository here; give a "
                             f"commit with data (git log --oneline), or leave --base out")
    check_writable(Path(args.out) / "index.html", "--out")
    return gate, bench, logs


def _exists(path) -> bool:
    """A file or folder, or a glob (--logs) that matches one."""
    import glob

    return Path(path).exists() or bool(glob.glob(str(path)))


if __name__ == "__main__":
    sys.exit(main())
