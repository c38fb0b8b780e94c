#!/usr/bin/env python3
"""Compare this checkout with a base commit on the quick bench; fail on a slowdown.

    python perf/compare.py --base origin/main            # what `make gate BASE=origin/main` runs

The base commit is checked out into a temporary git worktree. Both trees are measured on the
same machine, in the same job, with the same process environment: each in its own Python
subprocess whose PYTHONPATH points at that tree, so `import covertreex` loads that tree's
code. The measuring code is this file's ``--measure`` mode for both sides: it uses only the
public API (workloads.load_workload, CoverTree.fit / build_report.summary() / knn_report) and
this checkout's covertreex_bench/runtime.py, loaded by path (the harness's one Runtime-from-
preset and one Numba warm-up), so a base from before the harness moved out of the index can
be measured too: its workloads are covertreex.workloads. Each side warms up Numba on a tiny
instance first, then builds and queries ``--repeat`` times; ``--rounds`` alternates the two
sides (base, head, base, head, ...) to spread drifting machine load over both, and every
figure is the median over all runs of a side.

The figures compared ([compare].figures of the thresholds file, read by
covertreex_bench.thresholds) are build_wall_ms, query_wall_ms and traversal_ms_median; the
verdict fails when head / base exceeds the slowdown factor ([compare].slowdown_factor, or
--factor).

Exit status: 0 no figure slower than the factor, 1 a slowdown (table on stdout), 2 a bad
request or a side that could not be measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESS_RUNTIME = HERE.parent / "covertreex_bench" / "runtime.py"


class CompareError(Exception):
    pass


# --------------------------------------------------------------------------- measure mode (child)


def _harness_runtime():
    """This checkout's covertreex_bench/runtime.py, loaded by path: the tree being measured may
    be a base that has no covertreex_bench, or an older one."""
    spec = importlib.util.spec_from_file_location("_compare_harness_runtime", HARNESS_RUNTIME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(preset_name: str, repeat: int, n: int | None) -> dict:
    """Runs inside the child: figures of ``repeat`` builds + query runs of one preset."""
    import warnings

    import covertreex
    from covertreex import CoverTree

    harness = _harness_runtime()
    workloads = harness.workloads_module()
    preset = workloads.get_preset(preset_name)
    if n is not None:
        preset = workloads.scaled(preset, n)
    try:
        from covertreex.phases import Phases

        phases = Phases.all()
    except ImportError:  # a base without phase flags
        phases = None
    try:
        from covertreex.threads import configure_threading
    except ImportError:  # a base from before covertreex.threads
        from covertreex.runtime import configure_threading
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        configure_threading()

    warm_ms = harness.warm_up(preset, phases) * 1e3
    w = workloads.load_workload(preset)
    runs = []
    for _ in range(repeat):
        tree = CoverTree(harness.make_runtime(preset, phases)).fit(w.fit_input)
        _, _, query = tree.knn_report(w.knn_queries, preset.k, predecessor_mode=preset.predecessor_mode)
        report = tree.build_report
        runs.append({
            "build_wall_ms": report.build_wall_ms,
            "query_wall_ms": query.query_wall_ms,
            **{k: v for k, v in report.summary().items()
               if isinstance(v, (int, float)) and k != "build_wall_ms"},
        })
    return {"preset": preset.name, "covertreex_path": str(Path(covertreex.__file__).resolve().parent),
            "workloads": workloads.__name__, "warmup_ms": warm_ms, "runs": runs}


# --------------------------------------------------------------------------- driver (parent)


def _git(args, cwd, check=True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise CompareError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def _child(tree: Path, preset: str, repeat: int, n: int | None, out: Path) -> dict:
    """Measure one tree in a fresh interpreter with PYTHONPATH at that tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", "--preset", preset,
           "--repeat", str(repeat), "--out", str(out)]
    if n is not None:
        cmd += ["--n", str(n)]
    proc = subprocess.run(cmd, cwd=str(tree), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CompareError(f"measuring {tree} failed: {tail}")
    data = json.loads(out.read_text())
    if Path(data["covertreex_path"]).resolve() != (tree / "covertreex").resolve():
        raise CompareError(f"the child measuring {tree} imported covertreex from "
                           f"{data['covertreex_path']}; check PYTHONPATH / the editable install")
    return data


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def compare(base_runs, head_runs, figures, factor) -> list[dict]:
    rows = []
    for fig in figures:
        base = _median([r.get(fig) for r in base_runs])
        head = _median([r.get(fig) for r in head_runs])
        ratio = head / base if base and head is not None else None
        status = "n/a" if ratio is None else ("SLOWER" if ratio > factor else "ok")
        rows.append({"figure": fig, "base": base, "head": head, "ratio": ratio, "factor": factor,
                     "status": status})
    return rows


def format_rows(rows, base_label, head_label) -> str:
    table = [("figure", f"base {base_label}", f"head {head_label}", "head/base", "limit", "verdict")]
    for r in rows:
        table.append((r["figure"], "-" if r["base"] is None else f"{r['base']:.1f}",
                      "-" if r["head"] is None else f"{r['head']:.1f}",
                      "-" if r["ratio"] is None else f"{r['ratio']:.3f}", f"<= {r['factor']:g}",
                      {"ok": "PASS", "SLOWER": "FAIL", "n/a": "SKIP"}[r["status"]]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_compare_config(path):
    """[compare] of the thresholds file (default: the packaged one) via covertreex_bench.thresholds."""
    from covertreex_bench import thresholds

    try:
        config = thresholds.load(path)
    except thresholds.ThresholdsError as exc:
        raise CompareError(str(exc)) from None
    if config.compare is None:
        raise CompareError(f"thresholds file {config.path} has no [compare] table")
    return config.path, config.compare


def drive(args) -> int:
    thresholds, section = load_compare_config(args.thresholds)
    factor = float(args.factor if args.factor is not None else section.slowdown_factor)
    figures = section.figures
    preset = args.preset or section.preset
    repeat = args.repeat or section.repeat
    rounds = args.rounds or section.rounds

    head_tree = Path(_git(["rev-parse", "--show-toplevel"], cwd=HERE))
    base_sha = _git(["rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"], cwd=head_tree,
                    check=False)
    if not base_sha:
        raise CompareError(f"--base {args.base}: not a commit of {head_tree}")
    head_sha = _git(["rev-parse", "HEAD"], cwd=head_tree)
    dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd=head_tree))
    head_label = head_sha[:10] + ("+dirty" if dirty else "")
    print(f"compare: base {args.base} = {base_sha[:10]}, head {head_label} (working tree {head_tree})")
    print(f"preset {preset}{'' if args.n is None else f' scaled to n={args.n}'}, {repeat} run(s) per "
          f"side x {rounds} round(s), slowdown factor {factor:g} ({thresholds})", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="covertreex-base-"))
    worktree = tmp / "base"
    try:
        _git(["worktree", "add", "--detach", str(worktree), base_sha], cwd=head_tree)
        base_runs, head_runs = [], []
        for r in range(rounds):
            for label, tree, runs in (("base", worktree, base_runs), ("head", head_tree, head_runs)):
                start = time.perf_counter()
                data = _child(tree, preset, repeat, args.n, tmp / f"{label}-{r}.json")
                runs.extend(data["runs"])
                print(f"  round {r + 1}/{rounds} {label}: warm-up {data['warmup_ms'] / 1e3:.1f} s, "
                      f"{len(data['runs'])} run(s), {time.perf_counter() - start:.1f} s in all", flush=True)
    finally:
        _git(["worktree", "remove", "--force", str(worktree)], cwd=head_tree, check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    rows = compare(base_runs, head_runs, figures, factor)
    print()
    print(format_rows(rows, base_sha[:10], head_label))
    slower = [r for r in rows if r["status"] == "SLOWER"]
    if args.json:
        from covertreex_bench.environment import environment

        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"base": base_sha, "head": head_sha, "head_dirty": dirty,
                                   "preset": preset, "repeat": repeat, "rounds": rounds,
                                   "factor": factor, "rows": rows, "base_runs": base_runs,
                                   "head_runs": head_runs, "thresholds_file": thresholds,
                                   "environment": environment()}, indent=2) + "\n")
    print()
    if slower:
        print("FAIL: " + "; ".join(f"{r['figure']} {r['ratio']:.2f}x slower than base (limit {factor:g}x)"
                                  for r in slower))
        return 1
    print(f"PASS: no figure slower than {factor:g}x the base")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="perf/compare.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="base revision (commit, branch, tag)")
    parser.add_argument("--preset", default=None, help="preset (default: [compare].preset or quick)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per side and round (default 3)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 1)")
    parser.add_argument("--factor", type=float, default=None,
                        help="slowdown factor (default: [compare].slowdown_factor)")
    parser.add_argument("--thresholds", default=None,
                        help="thresholds file (default: covertreex_bench/thresholds.toml)")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.measure:
            data = measure(args.preset or "quick", args.repeat or 1, args.n)
            Path(args.out).write_text(json.dumps(data))
            return 0
        # The parent reads the thresholds and the environment with this checkout's harness.
        sys.path.insert(0, str(HERE.parent))
        if not args.base:
            raise CompareError("--base REV is required (e.g. make gate BASE=origin/main)")
        for name in ("repeat", "rounds"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise CompareError(f"--{name} must be >= 1")
        return drive(args)
    except CompareError as exc:
        print(f"perf/compare.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
